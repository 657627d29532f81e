//! The sensitive-word check every campaign passes before it can be submitted: the built-in
//! list (wording China's Advertising Law forbids in ads, and promises financial and medical
//! regulators refuse) plus the tenant's own `campaigns.sensitive_words`. Matching ignores
//! ASCII case and full-width forms; positions are in characters, not bytes.

/// Words refused in every tenant's campaigns.
pub const BUILT_IN: &[&str] = &[
    "国家级",
    "世界级",
    "最高级",
    "最佳",
    "最低价",
    "第一品牌",
    "全网第一",
    "绝对",
    "万能",
    "根治",
    "包治",
    "药到病除",
    "稳赚",
    "保本保息",
    "零风险",
    "无风险",
    "100%有效",
];

/// A sensitive word found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub word: String,
    /// Where it starts, in characters from the start of the text.
    pub position: usize,
}

/// Folds full-width ASCII (`１００％`) to ASCII and ASCII letters to lower case.
fn fold(c: char) -> char {
    let c = match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        0x3000 => ' ',
        _ => c,
    };
    c.to_ascii_lowercase()
}

/// Every occurrence of a built-in or `extra` word in `text`, in order of position.
pub fn check(text: &str, extra: &[String]) -> Vec<Found> {
    let hay: Vec<char> = text.chars().map(fold).collect();
    let mut found = Vec::new();
    let words = BUILT_IN
        .iter()
        .map(|w| w.to_string())
        .chain(extra.iter().cloned());
    for word in words {
        let needle: Vec<char> = word.chars().map(fold).collect();
        if needle.is_empty() || needle.len() > hay.len() {
            continue;
        }
        for start in 0..=hay.len() - needle.len() {
            if hay[start..start + needle.len()] == needle[..] {
                found.push(Found {
                    word: word.clone(),
                    position: start,
                });
            }
        }
    }
    found.sort_by(|a, b| (a.position, &a.word).cmp(&(b.position, &b.word)));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_and_full_width_forms_match() {
        let text = "亲爱的会员，本品全网第一，１００％有效！";
        let found = check(text, &[]);
        assert_eq!(
            found,
            vec![
                Found {
                    word: "全网第一".into(),
                    position: 8
                },
                Found {
                    word: "100%有效".into(),
                    position: 13
                },
            ]
        );
        // byte offsets would be 24 and 39: the positions are characters
        assert_eq!(text.chars().nth(8), Some('全'));
    }

    #[test]
    fn the_tenants_words_are_checked_too_ignoring_case() {
        let found = check("Try our FREE trial", &["free".to_owned()]);
        assert_eq!(
            found,
            vec![Found {
                word: "free".into(),
                position: 8
            }]
        );
        assert!(check("一切正常的通知", &[]).is_empty());
    }
}
