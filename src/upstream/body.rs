//! A response body read straight off the gateway's connection, delimited
//! by its framing, and the connection's way back to the pool.
//!
//! Bytes go to the client as they arrive (an SSE event is never held
//! back). When the body ends on a connection that may carry another
//! request, the connection returns to its pool at once, before the client
//! has even been written to; a body dropped early closes it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::chunked::{Chunked, Step};
use super::conn::{upgraded, Connection, Pool, Upgraded};
use super::response_head::Framing;

enum State {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    /// Ended; the connection (if any) is already back in the pool.
    Done,
}

pub struct UpstreamBody {
    state: State,
    /// `None` once ended or given to a tunnel.
    conn: Option<Box<Connection>>,
    /// Where the connection goes at the end, if it may be reused.
    pool: Option<Arc<Pool>>,
}

impl UpstreamBody {
    /// The body that follows a head with `framing` on `conn`. `pool`:
    /// where `conn` goes back at the end, `None` if it cannot be reused.
    pub(super) fn new(framing: Framing, conn: Box<Connection>, pool: Option<Arc<Pool>>) -> Self {
        let state = match framing {
            Framing::Empty => State::Length(0),
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(Chunked::Size),
            Framing::UntilClose => State::UntilClose,
            Framing::Upgrade => State::Done,
        };
        let mut body = UpstreamBody {
            state,
            conn: Some(conn),
            pool,
        };
        if matches!(body.state, State::Length(0)) {
            body.finish();
        }
        body
    }

    /// An empty body owning nothing.
    pub fn empty() -> Self {
        UpstreamBody {
            state: State::Done,
            conn: None,
            pool: None,
        }
    }

    /// After a 101: the connection, for the tunnel.
    pub fn take_upgraded(&mut self) -> Option<Upgraded> {
        self.pool = None;
        self.conn.take().map(|c| upgraded(*c))
    }

    /// The body is complete: the connection goes back to its pool.
    fn finish(&mut self) {
        self.state = State::Done;
        if let (Some(c), Some(pool)) = (self.conn.take(), self.pool.take()) {
            pool.put(c);
        }
    }

    /// Broken off: the connection is closed, never reused.
    fn fail(&mut self, e: io::Error) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.state = State::Done;
        self.conn = None;
        Poll::Ready(Some(Err(e)))
    }
}

fn framing_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "malformed chunked body from the gateway",
    )
}

fn cut_short() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the gateway closed the connection before the end of the body",
    )
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let buffered = !conn.read.is_empty();
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                State::Length(left) if buffered => {
                    let take = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(conn.read.len());
                    let data = conn.read.split_to(take).freeze();
                    *left -= take as u64;
                    if *left == 0 {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::UntilClose if buffered => {
                    let data = conn.read.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::Chunked(c) if buffered => match c.step(&mut conn.read) {
                    Ok(Step::Data(d)) => return Poll::Ready(Some(Ok(Frame::data(d)))),
                    Ok(Step::Done) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Step::NeedMore) => {}
                    Err(_) => return this.fail(framing_error()),
                },
                _ => {}
            }
            let conn = this.conn.as_mut().expect("checked above");
            match ready!(conn.poll_read_more(cx)) {
                Ok(0) if matches!(this.state, State::UntilClose) => {
                    this.state = State::Done;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(cut_short()),
                Ok(_) => {}
                Err(e) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done | State::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
