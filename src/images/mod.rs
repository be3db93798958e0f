//! Images: what a review's images are (references, normalised) and what is known about them.

pub mod facts;
pub mod reference;

pub use facts::{ImageFacts, Verification, VerificationStatus};
pub use reference::{ImageReference, ReferenceError};
