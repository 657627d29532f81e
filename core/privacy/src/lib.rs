//! Customer data protection (PIPL): what Shoal holds about a person and what it does with it.
//!
//! - [`register`]: every table that holds personal data, how its rows link to a person and
//!   what an erasure does to them — the one list export, erasure and the schema test read;
//! - [`export`]: `exportCustomerData`, everything held about one person as JSON;
//! - [`erase`]: `eraseCustomer`, personal values removed across every table, bills kept under
//!   the pseudonymous customer id, a certificate of what was done;
//! - [`rekey`]: re-encryption of every sealed value under a new data key version;
//! - [`retention`]: the supervised job that prunes or redacts old bodies and details.
//!
//! Sealing at rest (phones, e-mails, identities, audit details) is `shoal_base::vault` and
//! `shoal_crm::customers::sealed`; the consent ledger is `shoal_crm::consent` (the SOP and
//! campaign engines read it); this crate only opens what it exports.

pub mod erase;
pub mod export;
pub mod reencryption;
pub mod register;
pub mod rekey;
pub mod retention;
mod rows;
