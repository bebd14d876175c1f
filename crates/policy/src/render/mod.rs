//! Everything rendered from a policy: the notice people read, the record of
//! processing a regulator asks for, and the CCPA disclosures.

pub mod disclosures;
pub mod notice;
pub mod ropa;
