//! WeCom's callback XML: a flat `<xml>` of elements (text or CDATA), and for customer-group
//! changes a `<MemChangeList>` of `<Item>`s. Read into [`Message`] within bounds (size,
//! depth, element count): anything else is refused with the reason, never a panic.

use std::collections::BTreeMap;

use quick_xml::{Reader, events::Event};

/// Largest XML read (WeCom's event messages are well under 4 KiB).
pub const MAX_BYTES: usize = 64 * 1024;
const MAX_ELEMENTS: usize = 2_000;
const MAX_DEPTH: usize = 3;

/// A callback message: the root's elements by name, and the items of lists
/// (`MemChangeList`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub fields: BTreeMap<String, String>,
    pub lists: BTreeMap<String, Vec<String>>,
}

impl Message {
    /// The element's text, empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

fn predefined(name: &str) -> Option<char> {
    Some(match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        _ => return None,
    })
}

/// Reads a message; the error says what is wrong.
pub fn parse(xml: &[u8]) -> Result<Message, String> {
    if xml.len() > MAX_BYTES {
        return Err(format!("the XML is larger than {MAX_BYTES} bytes"));
    }
    let text = std::str::from_utf8(xml).map_err(|_| "the XML is not UTF-8".to_owned())?;
    let mut reader = Reader::from_str(text);
    // text is kept whole (references split it into pieces) and trimmed once complete
    reader.config_mut().trim_text(false);
    let mut message = Message::default();
    // names of the open elements, root first
    let mut open: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut elements = 0usize;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("not well-formed XML: {e}"))?;
        match event {
            Event::Start(e) => {
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(format!("more than {MAX_ELEMENTS} elements"));
                }
                if open.len() >= MAX_DEPTH {
                    return Err(format!("elements nested deeper than {MAX_DEPTH}"));
                }
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if open.is_empty() && name != "xml" {
                    return Err(format!("the root element is <{name}>, not <xml>"));
                }
                open.push(name);
                current.clear();
            }
            Event::Empty(e) => {
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(format!("more than {MAX_ELEMENTS} elements"));
                }
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if open.is_empty() && name != "xml" {
                    return Err(format!("the root element is <{name}>, not <xml>"));
                }
                if open.len() == 1 {
                    message.fields.entry(name).or_default();
                }
            }
            Event::Text(t) => {
                current.push_str(&t.decode().map_err(|e| format!("undecodable text: {e}"))?)
            }
            Event::CData(t) => {
                current.push_str(&t.decode().map_err(|e| format!("undecodable CDATA: {e}"))?)
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    _ => {
                        let name = r.decode().map_err(|e| format!("bad reference: {e}"))?;
                        predefined(&name).ok_or_else(|| format!("unknown entity &{name};"))?
                    }
                };
                current.push(c);
            }
            Event::End(_) => {
                let name = open.pop().unwrap_or_default();
                match open.len() {
                    1 => {
                        message
                            .fields
                            .insert(name, std::mem::take(&mut current).trim().to_owned());
                    }
                    2 => {
                        let list = open[1].clone();
                        message
                            .lists
                            .entry(list)
                            .or_default()
                            .push(std::mem::take(&mut current).trim().to_owned());
                    }
                    _ => current.clear(),
                }
            }
            Event::Eof => break,
            // declarations, comments, processing instructions, doctypes: ignored
            _ => {}
        }
    }
    if !open.is_empty() {
        return Err("the XML ends inside an element".into());
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_external_contact_event_reads_as_fields() {
        // WeCom's documented example of 添加企业客户事件
        let xml = b"<xml>\
            <ToUserName><![CDATA[toUser]]></ToUserName>\
            <FromUserName><![CDATA[sys]]></FromUserName>\
            <CreateTime>1403610513</CreateTime>\
            <MsgType><![CDATA[event]]></MsgType>\
            <Event><![CDATA[change_external_contact]]></Event>\
            <ChangeType><![CDATA[add_external_contact]]></ChangeType>\
            <UserID><![CDATA[zhangsan]]></UserID>\
            <ExternalUserID><![CDATA[woAJ2GCAAAXtWyujaWJHDDGi0mAAAA]]></ExternalUserID>\
            <State><![CDATA[teststate]]></State>\
            <WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode>\
            </xml>";
        let m = parse(xml).unwrap();
        assert_eq!(m.get("Event"), "change_external_contact");
        assert_eq!(m.get("ExternalUserID"), "woAJ2GCAAAXtWyujaWJHDDGi0mAAAA");
        assert_eq!(m.get("CreateTime"), "1403610513");
        assert_eq!(m.get("Nothing"), "");
    }

    #[test]
    fn group_member_changes_read_as_a_list() {
        let xml = "<xml><Event><![CDATA[change_external_chat]]></Event>\
            <ChatId><![CDATA[wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA]]></ChatId>\
            <ChangeType><![CDATA[update]]></ChangeType>\
            <UpdateDetail><![CDATA[add_member]]></UpdateDetail>\
            <JoinScene>1</JoinScene><MemChangeCnt>2</MemChangeCnt>\
            <MemChangeList><Item>wmA</Item><Item>wmB &amp; co</Item></MemChangeList>\
            </xml>";
        let m = parse(xml.as_bytes()).unwrap();
        assert_eq!(m.get("UpdateDetail"), "add_member");
        assert_eq!(m.lists["MemChangeList"], ["wmA", "wmB & co"]);
    }

    #[test]
    fn hostile_or_broken_xml_is_refused_with_a_reason() {
        for (xml, part) in [
            ("<xml><a>", "ends inside"),
            ("<root/>", "not <xml>"),
            ("<xml><a><b><c>x</c></b></a></xml>", "deeper"),
            ("<xml><a>&bogus;</a></xml>", "entity"),
            ("<xml><a></b></xml>", "well-formed"),
        ] {
            let e = parse(xml.as_bytes()).unwrap_err();
            assert!(e.contains(part), "{xml}: {e}");
        }
        assert!(
            parse(&vec![b'<'; MAX_BYTES + 1])
                .unwrap_err()
                .contains("larger")
        );
        assert!(parse(&[0xff, 0xfe]).is_err());
    }
}
