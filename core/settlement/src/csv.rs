//! A small RFC 4180 CSV reader (quoted fields, doubled quotes, CRLF) for price libraries;
//! CSV is written by `shoal_base::csv_out`.

/// Rows of fields; the first row is usually the header.
pub fn parse(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => {
                if c == '\n' {
                    line += 1;
                }
                field.push(c);
            }
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                line += 1;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err(format!("line {line}: a quoted field is not closed"));
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows.retain(|r| !(r.len() == 1 && r[0].trim().is_empty()));
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_and_line_breaks_round_trip() {
        let rows = parse("code,name\r\nA1,\"Filter, large\"\nB2,\"say \"\"hi\"\"\"\n\n").unwrap();
        assert_eq!(
            rows,
            [
                vec!["code", "name"],
                vec!["A1", "Filter, large"],
                vec!["B2", "say \"hi\""]
            ]
        );
        let text: String = rows.iter().map(|r| shoal_base::csv_out::line(r)).collect();
        assert_eq!(parse(&text).unwrap(), rows);
        assert!(parse("a,\"open").is_err());
    }
}
