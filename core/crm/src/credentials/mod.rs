//! Staff sign-in (docs/console.md): passwords and the sessions a browser holds. Above
//! `tenancy` (a session resolves to a [`crate::tenancy::Principal`]) and `audit` (sign-ins,
//! lockouts and password changes are recorded).

pub mod addresses;
pub mod passwords;
pub mod sessions;
