//! The audit trail's readers, for operators and auditors offline
//! (`fieldguard audit verify|subject|expand|filter`): they check the
//! chains a fleet wrote, resolve compact records back to their full form,
//! and answer a customer's access request. The serving code writes the
//! trail (`crate::audit`) and never imports these.

pub mod expand;
pub mod filter;
pub mod read;
pub mod subject;
pub mod verify;

pub use verify::{VerifyFailure, VerifyOptions, VerifyReport, verify_files};
