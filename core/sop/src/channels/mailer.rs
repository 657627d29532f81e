//! E-mail over SMTP (lettre), for staff notifications and the `email` channel alike: to the
//! operator's relay at `notify.smtp_url` (`smtp://host:port`, plain SMTP — the relay, inside
//! the operator's network, carries the mail on with TLS and authentication).

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart, header::ContentType},
};

use shoal_base::config::NotifyConfig;

/// A relay and the `From` (and `Reply-To`) of what is sent through it.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    reply_to: Option<Mailbox>,
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
    /// The mailer of staff notifications, `None` without `notify.smtp_url`; an error names
    /// the key.
    pub fn from_config(cfg: &NotifyConfig) -> Result<Option<Mailer>, (String, String)> {
        let Some(url) = &cfg.smtp_url else {
            return Ok(None);
        };
        Mailer::new(url, &cfg.email_from, None, cfg.timeout_ms)
            .map(Some)
            .map_err(|(key, message)| {
                let key = if key == "from" {
                    "email_from"
                } else {
                    "smtp_url"
                };
                (format!("notify.{key}"), message)
            })
    }

    /// A mailer on the relay at `url` sending as `from`; an error names the part at fault
    /// (`smtp_url`, `from` or `reply_to`).
    pub fn new(
        url: &str,
        from: &str,
        reply_to: Option<&str>,
        timeout_ms: u64,
    ) -> Result<Mailer, (String, String)> {
        let bad = |why: &str| ("smtp_url".to_owned(), format!("`{url}`: {why}"));
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
        let address = |key: &str, text: &str| {
            text.parse::<Mailbox>()
                .map_err(|e| (key.to_owned(), format!("`{text}` is not an address: {e}")))
        };
        let from = address("from", from)?;
        let reply_to = reply_to.map(|r| address("reply_to", r)).transpose()?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(std::time::Duration::from_millis(timeout_ms)))
            .build();
        Ok(Mailer {
            transport,
            from,
            reply_to,
        })
    }

    /// Sends a message: plain text, or text with an HTML alternative (UTF-8: Chinese
    /// subjects and bodies are encoded as the RFCs say).
    pub async fn send(
        &self,
        to: &str,
        subject: &str,
        text: &str,
        html: Option<String>,
    ) -> Result<(), NotSent> {
        let to: Mailbox = to.parse().map_err(|e| NotSent {
            message: format!("`{to}` is not an e-mail address: {e}"),
            retry: false,
        })?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject);
        if let Some(r) = &self.reply_to {
            builder = builder.reply_to(r.clone());
        }
        let built = match html {
            None => builder
                .header(ContentType::TEXT_PLAIN)
                .body(text.to_owned()),
            Some(html) => {
                builder.multipart(MultiPart::alternative_plain_html(text.to_owned(), html))
            }
        };
        let message = built.map_err(|e| NotSent {
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
