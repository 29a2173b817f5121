//! The body of a response clawgate makes itself (refusals, the login
//! page): its bytes, and for JSON answers the header fields every one
//! carries as prewritten lines ([`HeadFields`]), so the refusal path
//! builds no `HeaderMap` for them, as the proxied path builds none for
//! the gateway's.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};

use super::HeadFields;
use crate::deny::Answer;

pub struct LocalBody {
    data: Full<Bytes>,
    fields: Option<HeadFields>,
}

impl LocalBody {
    pub fn new(data: impl Into<Bytes>) -> Self {
        LocalBody {
            data: Full::new(data.into()),
            fields: None,
        }
    }

    /// The fields for whoever writes the response head.
    pub fn fields_mut(&mut self) -> Option<&mut HeadFields> {
        self.fields.as_mut()
    }

    pub fn take_fields(&mut self) -> Option<HeadFields> {
        self.fields.take()
    }
}

/// One of `deny`'s JSON answers as a response: its fixed fields ride with
/// the body (the request ID is added to them by `proxy::serve`).
pub fn answer(a: Answer) -> Response<LocalBody> {
    let mut r = Response::new(LocalBody {
        data: Full::new(Bytes::from(a.body)),
        fields: Some(HeadFields {
            lines: Bytes::from_static(a.fields),
            ..HeadFields::default()
        }),
    });
    *r.status_mut() = a.status;
    r
}

/// A bodyless answer (redirects); its fields go in the `HeaderMap`.
pub fn empty(status: StatusCode) -> Response<LocalBody> {
    let mut r = Response::new(LocalBody::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

impl Body for LocalBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.data).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.data.size_hint()
    }
}
