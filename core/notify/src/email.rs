//! E-mail notifications over SMTP (lettre): to the operator's relay at `notify.smtp_url`
//! (`smtp://host:port`, plain SMTP — the relay, inside the operator's network, carries the
//! mail on with TLS and authentication), from `notify.email_from`.

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
};

use shoal_base::config::NotifyConfig;

/// The e-mail channel of a host.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mailer(from {})", self.from)
    }
}

/// Why an e-mail was not taken, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotSent {
    pub message: String,
    pub retry: bool,
}

impl Mailer {
    /// The mailer `cfg` describes, `None` without `notify.smtp_url`; an error names the key.
    pub fn from_config(cfg: &NotifyConfig) -> Result<Option<Mailer>, (String, String)> {
        let Some(url) = &cfg.smtp_url else {
            return Ok(None);
        };
        let bad = |why: &str| ("notify.smtp_url".to_owned(), format!("`{url}`: {why}"));
        let rest = url
            .strip_prefix("smtp://")
            .ok_or_else(|| bad("an smtp://host:port URL"))?;
        let (host, port) = match rest.trim_end_matches('/').rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| bad("the port is not a number"))?,
            ),
            None => (rest.trim_end_matches('/'), 25),
        };
        if host.is_empty() || host.contains('@') {
            return Err(bad("a host (no credentials in the URL)"));
        }
        let from = cfg.email_from.parse::<Mailbox>().map_err(|e| {
            (
                "notify.email_from".to_owned(),
                format!("`{}` is not an address: {e}", cfg.email_from),
            )
        })?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(std::time::Duration::from_millis(cfg.timeout_ms)))
            .build();
        Ok(Some(Mailer { transport, from }))
    }

    /// Sends a plain-text message (UTF-8: Chinese subjects and bodies are encoded as the
    /// RFCs say).
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), NotSent> {
        let to: Mailbox = to.parse().map_err(|e| NotSent {
            message: format!("`{to}` is not an e-mail address: {e}"),
            retry: false,
        })?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| NotSent {
                message: format!("the message cannot be built: {e}"),
                retry: false,
            })?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| NotSent {
                retry: !e.is_permanent(),
                message: format!("the SMTP relay refused: {e}"),
            })
    }
}
