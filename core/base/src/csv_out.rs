//! CSV as Shoal writes it (customer exports, statements): RFC 4180 quoting, and cells that a
//! spreadsheet would run as a formula (`=`, `+`, `-`, `@`, a tab or a carriage return first)
//! neutralised with a leading `'` — a customer named `=HYPERLINK(…)` must not become a link
//! in the exporting manager's spreadsheet. Numbers (`-12.50`) are left as they are.

/// One cell: neutralised when it could be read as a formula, quoted when it must be.
///
/// ```
/// use shoal_base::csv_out::field;
/// assert_eq!(field("张三"), "张三");
/// assert_eq!(field("=1+1"), "'=1+1");
/// assert_eq!(field("@SUM(A1)"), "'@SUM(A1)");
/// assert_eq!(field("-12.50"), "-12.50");
/// assert_eq!(field(" =1+1"), "' =1+1");
/// assert_eq!(field("＝1+1"), "'＝1+1");
/// assert_eq!(field("a,\"b\""), "\"a,\"\"b\"\"\"");
/// ```
pub fn field(value: &str) -> String {
    // spreadsheets skip leading blanks and read full-width signs too
    let first = value.trim_start_matches([' ', '\u{3000}']);
    let risky = first.starts_with(['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠'])
        && value.trim().parse::<f64>().is_err();
    let value = if risky {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// One line (with `\n`) of [`field`]s.
pub fn line<S: AsRef<str>>(fields: &[S]) -> String {
    let cells: Vec<String> = fields.iter().map(|f| field(f.as_ref())).collect();
    format!("{}\n", cells.join(","))
}
