//! Images: what a review's images are (references, normalised) and what is known about them.

pub mod attest;
pub mod config;
pub mod credentials;
pub mod dns;
pub mod envelope;
pub mod facts;
pub mod pace;
pub mod pattern;
pub mod pull_secrets;
pub mod reference;
pub mod registry;
pub mod secret_keys;
pub mod signatures;
pub mod timestamp;
pub mod trust;
pub mod trusted_root;
mod verdicts;
pub mod verify;
pub mod window;

pub use facts::{ImageFacts, ImageLocation, Verification, VerificationStatus};
pub use reference::{ImageReference, ReferenceError};
