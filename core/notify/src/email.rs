//! E-mail notifications go through the host's relay with the mailer the `email` channel
//! uses (`shoal_sop::channels::mailer`), from `notify.email_from`.

pub use shoal_sop::channels::mailer::{Mailer, NotSent};
