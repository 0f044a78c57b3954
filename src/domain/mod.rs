//! Request-independent domain types and rules: recipients, outgoing messages,
//! validation texts, vCards, device names and the timestamp format of the v2.3.0 API.

pub mod device;
pub mod outgoing;
pub mod recipient;
pub mod timestamp;
pub mod validation;
pub mod vcard;
