//! Field masking: how a phone, an email, a name or a JSON value reads to a caller who may
//! not see it, and the fields of audit entries. A whole profile is masked in
//! `customers::mask`.

use serde_json::Value;

use super::Access;
use shoal_base::kinds::Visibility;

/// `+8613812345678` → `138****5678`: the national number with all but its first three and
/// last four digits starred (shorter numbers keep their last two).
pub fn mask_phone(e164: &str) -> String {
    let national = phonenumber::parse(None, e164)
        .map(|n| n.national().value().to_string())
        .unwrap_or_else(|_| e164.trim_start_matches('+').to_owned());
    let digits: Vec<char> = national.chars().collect();
    let n = digits.len();
    let (head, tail) = if n >= 9 { (3, 4) } else { (0, 2.min(n)) };
    digits
        .iter()
        .enumerate()
        .map(|(i, c)| if i < head || i >= n - tail { *c } else { '*' })
        .collect()
}

/// `zhang.wei@example.com` → `z***@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => mask_text(email),
    }
}

/// `张三丰` → `张**`; `ab` → `a*`; short or long, only the first character shows.
pub fn mask_text(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => {
            let rest = chars.count().clamp(1, 8);
            format!("{first}{}", "*".repeat(rest))
        }
        None => String::new(),
    }
}

/// A JSON value masked: text by [`mask_text`], anything else as `"***"`.
pub(crate) fn mask_value(v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        Value::String(s) => Value::String(mask_text(s)),
        _ => Value::String("***".into()),
    }
}

impl Access {
    /// Customer fields inside an audit entry's `changes` (`{"phones": {"from": …, "to": …}}`
    /// or a snapshot `{"phones": […]}`), masked for the reader.
    pub fn mask_changes(&self, changes: &mut Value) {
        if self.system {
            return;
        }
        let Value::Object(map) = changes else {
            return;
        };
        for (field, value) in map.iter_mut() {
            match value {
                Value::Object(pair) if is_change(pair) => {
                    for side in ["from", "to"] {
                        if let Some(v) = pair.get_mut(side) {
                            self.mask_field_value(field, v);
                        }
                    }
                }
                _ => self.mask_field_value(field, value),
            }
        }
    }

    /// One field's value (`phones` → a list, `attributes` → an object, …) masked.
    pub fn mask_field_value(&self, field: &str, v: &mut Value) {
        let per_item = |v: &mut Value, mask: fn(&str) -> String, rule: Visibility| match rule {
            Visibility::Visible => {}
            Visibility::Hidden => *v = Value::Null,
            Visibility::Masked => match v {
                Value::Array(items) => {
                    for item in items {
                        if let Value::String(s) = item {
                            *s = mask(s);
                        }
                    }
                }
                Value::String(s) => *s = mask(s),
                _ => {}
            },
        };
        match field {
            "phones" => per_item(v, mask_phone, self.visibility("phones")),
            "emails" => per_item(v, mask_email, self.visibility("emails")),
            "displayName" => per_item(v, mask_text, self.visibility("displayName")),
            "identities" => match self.visibility("identities") {
                Visibility::Visible => {}
                Visibility::Hidden => *v = Value::Null,
                Visibility::Masked => {
                    if let Value::Array(items) = v {
                        for item in items {
                            if let Some(Value::String(s)) = item.get_mut("externalId") {
                                *s = mask_text(s);
                            }
                        }
                    }
                }
            },
            "attributes" => {
                if let Value::Object(attrs) = v {
                    let keys: Vec<String> = attrs.keys().cloned().collect();
                    for key in keys {
                        match self.visibility(&format!("attributes.{key}")) {
                            Visibility::Visible => {}
                            Visibility::Masked => {
                                let masked = mask_value(&attrs[&key]);
                                attrs.insert(key, masked);
                            }
                            Visibility::Hidden => {
                                attrs.remove(&key);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// `{"from": …, "to": …}`: one changed field.
fn is_change(o: &serde_json::Map<String, Value>) -> bool {
    o.len() == 2 && o.contains_key("from") && o.contains_key("to")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_keep_their_first_three_and_last_four_digits() {
        assert_eq!(mask_phone("+8613812345678"), "138****5678");
        assert_eq!(mask_phone("+14155552671"), "415***2671");
    }

    #[test]
    fn emails_keep_the_first_letter_and_the_domain() {
        assert_eq!(mask_email("zhang@example.com"), "z***@example.com");
    }

    #[test]
    fn text_keeps_its_first_character() {
        assert_eq!(mask_text("张三丰"), "张**");
        assert_eq!(mask_text("a"), "a*");
    }
}
