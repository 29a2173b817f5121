//! The response body the client is sent: the gateway's, cut off when an
//! open event stream's grant is revoked or the drain's time is up, and
//! reporting a gateway that breaks off mid-body.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::tunnel::StreamWatch;
use crate::message::HeadFields;
use crate::request_id::RequestId;
use crate::tunnel::DRAIN_DEADLINE;
use crate::upstream::UpstreamBody;

/// A response body streamed from the gateway. If the gateway breaks off
/// mid-body (reset, closed early) after the head went to the client, the
/// client's connection is cut and the fault is counted and logged once,
/// like one before the head.
pub struct ResponseBody {
    inner: UpstreamBody,
    /// The gateway's header fields, until the response head is written.
    fields: Option<HeadFields>,
    /// `clawgate_upstream_errors_total{upstream,kind="reset"}` and the
    /// request ID, until the fault is reported.
    fault: Option<(prometheus::IntCounter, RequestId)>,
    /// For event streams: ends the body when the grant is revoked (boxed:
    /// rare, and every response body is moved through the request path).
    watch: Option<Box<StreamWatch>>,
}

impl ResponseBody {
    pub fn new(
        inner: UpstreamBody,
        fields: HeadFields,
        reset: prometheus::IntCounter,
        request_id: RequestId,
    ) -> Self {
        ResponseBody {
            inner,
            fields: Some(fields),
            fault: Some((reset, request_id)),
            watch: None,
        }
    }

    /// The gateway's header fields, for whoever writes the response head.
    pub fn fields_mut(&mut self) -> Option<&mut HeadFields> {
        self.fields.as_mut()
    }

    pub fn take_fields(&mut self) -> Option<HeadFields> {
        self.fields.take()
    }

    /// End this (long-lived) body when `watch` says so.
    pub fn watched(mut self, watch: StreamWatch) -> Self {
        self.watch = Some(Box::new(watch));
        self
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(w) = self.watch.as_mut() {
            if let Poll::Ready(reason) = w.poll_stop(cx) {
                // Mid-stream: dropping the body closes the connection.
                self.watch = None;
                self.inner = UpstreamBody::empty();
                if reason == DRAIN_DEADLINE {
                    // An error, not an end: the client's connection is
                    // cut before the last chunk (h2: the stream is reset).
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "event stream cut at the drain deadline",
                    ))));
                }
                return Poll::Ready(None);
            }
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(e))) = &polled {
            if let Some((reset, request_id)) = self.fault.take() {
                reset.inc();
                tracing::warn!(request_id = ?request_id, "upstream response broke off mid-body: {e}");
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
