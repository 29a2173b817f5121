//! One HTTP message representation between the codecs and the request
//! handler: the client's request as `downstream` hands it over
//! ([`ClientRequest`], its header [`Fields`] as slices of the bytes read,
//! its [`RequestBody`]), and a response's header fields prewritten as
//! lines and carried with its body ([`HeadFields`]), from the gateway or
//! from an answer clawgate makes itself ([`LocalBody`]).

pub mod fields;
pub mod head_fields;
pub mod local_body;
pub mod request;
pub mod request_body;

pub use fields::Fields;
pub use head_fields::HeadFields;
pub use local_body::LocalBody;
pub use request::ClientRequest;
pub use request_body::RequestBody;
