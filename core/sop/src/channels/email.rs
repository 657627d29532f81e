//! E-mail (`[tenants.<id>.channels.email]`): through the host's SMTP relay
//! (`notify.smtp_url`), from the tenant's address. The message's first line is its subject
//! and the rest its body (a one-line message is both). When the host has a
//! `server.public_url`, the message also carries an HTML part whose links go through the
//! host (`/t/<tenant>/<message>/click/<link>`, then redirected to the link) and a one-pixel
//! image (`/t/<tenant>/<message>/open.gif`): the recipient's status moves to `opened` and
//! `clicked` as they arrive. The plain-text part keeps the links as written.

use base64::Engine;

use super::{Address, Channel, Ctx, Handed, Outgoing, Sending, mailer::Mailer};
use shoal_crm::tenancy::Tenant;

/// The `email` adapter.
#[derive(Debug)]
pub struct Email {
    mailer: Mailer,
    /// `<public_url>/t/<tenant>`, when tracking.
    tracking: Option<String>,
}

impl Email {
    /// The tenant's e-mail channel: `None` without its section; an error names the key.
    pub fn of(tenant: &Tenant) -> Option<Result<Email, (String, String)>> {
        let c = tenant.channels.email.as_ref()?;
        let Some(url) = &tenant.host.smtp_url else {
            return Some(Err((
                "from".into(),
                "the host has no SMTP relay (notify.smtp_url) to send e-mail through".into(),
            )));
        };
        Some(
            Mailer::new(
                url,
                &c.from,
                c.reply_to.as_deref(),
                tenant.host.smtp_timeout_ms,
            )
            .map(|mailer| Email {
                mailer,
                tracking: tenant
                    .host
                    .public_url
                    .as_ref()
                    .map(|u| format!("{u}/t/{}", tenant.id)),
            }),
        )
    }
}

/// The subject (first line, at most 100 characters) and body of a message.
pub fn subject_and_body(text: &str) -> (String, &str) {
    let text = text.trim();
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let subject: String = first.trim().chars().take(100).collect();
    let body = rest.trim();
    (subject, if body.is_empty() { text } else { body })
}

/// The links (`http://`, `https://`) in a text, in order: a link ends at white space, a
/// quote, `<`, `>` or a non-ASCII character, without trailing punctuation.
pub fn links(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = ["http://", "https://"]
        .iter()
        .filter_map(|p| text[from..].find(p).map(|i| from + i))
        .min()
    {
        let end = text[at..]
            .find(|c: char| c.is_whitespace() || !c.is_ascii() || "<>\"'".contains(c))
            .map_or(text.len(), |i| at + i);
        let link = text[at..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')']);
        if link.len() > "https://".len() {
            out.push((at, link));
        }
        from = at + link.len().max(1);
    }
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("<br>\n"),
            c => out.push(c),
        }
    }
    out
}

/// The tracked HTML rendering of `body` for message `id`: text escaped, each link through
/// `<base>/<id>/click/<link as base64url>`, the open pixel at the end.
pub fn tracked_html(base: &str, id: &str, body: &str) -> String {
    let mut html = String::from("<!DOCTYPE html><html><body><p>");
    let mut last = 0;
    for (at, link) in links(body) {
        html.push_str(&escape(&body[last..at]));
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(link);
        html.push_str(&format!(
            "<a href=\"{base}/{id}/click/{token}\">{}</a>",
            escape(link)
        ));
        last = at + link.len();
    }
    html.push_str(&escape(&body[last..]));
    html.push_str(&format!(
        "</p><img src=\"{base}/{id}/open.gif\" width=\"1\" height=\"1\" alt=\"\"></body></html>"
    ));
    html
}

impl Channel for Email {
    fn name(&self) -> &'static str {
        "email"
    }
    fn address(&self) -> Address {
        Address::Email
    }
    /// SMTP has no idempotency key: a message whose hand-over a crash interrupted is not
    /// sent again.
    fn drops_repeats(&self) -> bool {
        false
    }
    fn send<'a>(&'a self, _ctx: Ctx<'a>, m: &'a Outgoing<'a>) -> Sending<'a> {
        Box::pin(async move {
            let Some(to) = m.address else {
                return Handed::Refused("the customer has no e-mail address".into());
            };
            let (subject, body) = subject_and_body(m.text);
            let html = self
                .tracking
                .as_ref()
                .map(|base| tracked_html(base, m.id, body));
            match self.mailer.send(to, &subject, body, html).await {
                Ok(()) => Handed::Taken { reference: None },
                Err(e) if e.retry => Handed::Retry(e.message),
                Err(e) => Handed::Refused(e.message),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_end_where_chinese_text_or_punctuation_begins() {
        let text = "新品：https://shop.example/p?id=7&c=a，点击查看。旧版 http://x.example/a.";
        let found: Vec<&str> = links(text).into_iter().map(|(_, l)| l).collect();
        assert_eq!(
            found,
            ["https://shop.example/p?id=7&c=a", "http://x.example/a"]
        );
    }

    #[test]
    fn the_first_line_is_the_subject() {
        assert_eq!(
            subject_and_body("周末特惠\n李雷，您好：\n全场八折"),
            ("周末特惠".to_owned(), "李雷，您好：\n全场八折")
        );
        assert_eq!(
            subject_and_body("只有一行"),
            ("只有一行".to_owned(), "只有一行")
        );
    }

    #[test]
    fn html_escapes_the_text_and_tracks_each_link() {
        let html = tracked_html(
            "https://crm.example/t/alpha",
            "m1",
            "<b>&\nhttps://a.example/x",
        );
        assert!(html.contains("&lt;b&gt;&amp;<br>"), "{html}");
        assert!(html.contains(
            "<a href=\"https://crm.example/t/alpha/m1/click/aHR0cHM6Ly9hLmV4YW1wbGUveA\">https://a.example/x</a>"
        ), "{html}");
        assert!(html.contains("src=\"https://crm.example/t/alpha/m1/open.gif\""));
    }
}
