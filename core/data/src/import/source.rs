//! Reading rows from CSV or XLSX, streaming: a thread parses the file and hands rows over a
//! bounded channel, so memory stays constant whatever the file's size and parsing overlaps
//! with the database writes. (An XLSX sheet is streamed cell by cell from the file; its
//! shared-strings table is held in memory.)

use std::{
    io::{BufReader, Cursor, Read},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use calamine::{DataRef, DataType, Reader, Xlsx};
use tokio::sync::mpsc;

use super::mapping::Mapping;

/// Rows in flight between the parser thread and the importer.
const CHANNEL: usize = 4096;

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    /// From a file name's extension (`.xlsx`, else CSV).
    pub fn of(path: &Path) -> Format {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("xlsx") | Some("xlsm") => Format::Xlsx,
            _ => Format::Csv,
        }
    }
}

/// Where the rows come from.
#[derive(Debug, Clone)]
pub enum Input {
    File(PathBuf),
    Bytes(Vec<u8>),
}

/// One source row: its 1-based number as a spreadsheet shows it (XLSX: the sheet's row
/// number; CSV: the record's number, a cell spanning lines being one row; empty lines are
/// skipped), and its cells (or why they cannot be read).
#[derive(Debug, Clone)]
pub struct Row {
    pub number: u64,
    pub cells: Result<Vec<String>, String>,
}

/// Why a file cannot be read at all.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open {path}: {message}")]
    Open { path: String, message: String },
    #[error("row {row}: {message}")]
    Parse { row: u64, message: String },
    #[error("no header row {0} in the file")]
    NoHeader(u64),
    #[error("no sheet `{0}` in the workbook (it has: {1})")]
    NoSheet(String, String),
}

enum Msg {
    Header(Vec<String>),
    Row(Row),
    Failed(SourceError),
}

/// An open source: its header, then its rows.
pub struct Source {
    pub header: Vec<String>,
    rx: mpsc::Receiver<Msg>,
    /// Bytes (CSV) or rows (XLSX) read so far, and the total when known, for progress.
    pub done: Arc<AtomicU64>,
    pub total: Option<u64>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("header", &self.header)
            .finish()
    }
}

impl Source {
    /// Opens `input` and reads its header; rows numbered up to `skip_through` are skipped
    /// (resuming after a checkpoint).
    pub async fn open(
        input: Input,
        format: Format,
        mapping: &Mapping,
        skip_through: u64,
    ) -> Result<Source, SourceError> {
        let (tx, mut rx) = mpsc::channel(CHANNEL);
        let done = Arc::new(AtomicU64::new(0));
        let total = match (&input, format) {
            (Input::File(p), Format::Csv) => std::fs::metadata(p).ok().map(|m| m.len()),
            (Input::Bytes(b), Format::Csv) => Some(b.len() as u64),
            _ => None,
        };
        let opts = Options {
            delimiter: mapping.delimiter,
            encoding: mapping.encoding,
            sheet: mapping.sheet.clone(),
            header_row: mapping.header_row,
            skip_through,
        };
        let counter = done.clone();
        let (total_tx, total_rx) = std::sync::mpsc::channel::<u64>();
        std::thread::spawn(move || {
            let result = match format {
                Format::Csv => read_csv(input, &opts, &tx, &counter),
                Format::Xlsx => read_xlsx(input, &opts, &tx, &counter, &total_tx),
            };
            if let Err(e) = result {
                let _ = tx.blocking_send(Msg::Failed(e));
            }
        });
        match rx.recv().await {
            Some(Msg::Header(header)) => Ok(Source {
                header,
                rx,
                done,
                total: total.or_else(|| total_rx.try_recv().ok()),
            }),
            Some(Msg::Failed(e)) => Err(e),
            Some(Msg::Row(_)) | None => Err(SourceError::NoHeader(opts_header(mapping))),
        }
    }

    /// The next row, `None` at the end of the file.
    pub async fn next(&mut self) -> Result<Option<Row>, SourceError> {
        match self.rx.recv().await {
            Some(Msg::Row(row)) => Ok(Some(row)),
            Some(Msg::Failed(e)) => Err(e),
            Some(Msg::Header(_)) | None => Ok(None),
        }
    }
}

fn opts_header(m: &Mapping) -> u64 {
    m.header_row
}

struct Options {
    delimiter: u8,
    encoding: Option<&'static encoding_rs::Encoding>,
    sheet: Option<String>,
    header_row: u64,
    skip_through: u64,
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn open_read(input: Input) -> Result<Box<dyn Read + Send>, SourceError> {
    Ok(match input {
        Input::File(path) => Box::new(BufReader::with_capacity(
            1 << 16,
            std::fs::File::open(&path).map_err(|e| SourceError::Open {
                path: path.display().to_string(),
                message: e.to_string(),
            })?,
        )),
        Input::Bytes(bytes) => Box::new(Cursor::new(bytes)),
    })
}

fn decode(
    field: &[u8],
    encoding: Option<&'static encoding_rs::Encoding>,
) -> Result<String, String> {
    match encoding {
        Some(enc) => {
            let (text, had_errors) = enc.decode_without_bom_handling(field);
            if had_errors {
                Err(format!("not valid {} text", enc.name()))
            } else {
                Ok(text.into_owned())
            }
        }
        None => std::str::from_utf8(field).map(str::to_owned).map_err(|_| {
            "not valid UTF-8 (set source.encoding in the mapping, e.g. \"gbk\")".to_owned()
        }),
    }
}

fn read_csv(
    input: Input,
    o: &Options,
    tx: &mpsc::Sender<Msg>,
    counter: &Arc<AtomicU64>,
) -> Result<(), SourceError> {
    let reader = Counting {
        inner: open_read(input)?,
        count: counter.clone(),
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(o.delimiter)
        .from_reader(reader);
    let mut record = csv::ByteRecord::new();
    let mut number = 0u64;
    let mut header_sent = false;
    loop {
        let more = csv
            .read_byte_record(&mut record)
            .map_err(|e| SourceError::Parse {
                row: number + 1,
                message: e.to_string(),
            })?;
        if !more {
            break;
        }
        number += 1;
        if number < o.header_row {
            continue;
        }
        let cells: Result<Vec<String>, String> =
            record.iter().map(|f| decode(f, o.encoding)).collect();
        if number == o.header_row {
            let mut header = cells.map_err(|message| SourceError::Parse {
                row: number,
                message,
            })?;
            if let Some(first) = header.first_mut() {
                *first = first.trim_start_matches('\u{feff}').to_owned();
            }
            let header = header.into_iter().map(|h| h.trim().to_owned()).collect();
            if tx.blocking_send(Msg::Header(header)).is_err() {
                return Ok(());
            }
            header_sent = true;
            continue;
        }
        if number <= o.skip_through {
            continue;
        }
        if tx.blocking_send(Msg::Row(Row { number, cells })).is_err() {
            return Ok(()); // the importer stopped
        }
    }
    if !header_sent {
        return Err(SourceError::NoHeader(o.header_row));
    }
    Ok(())
}

/// A cell as text: integers without `.0` (phone numbers typed as numbers), dates as
/// `YYYY-MM-DD[ HH:MM:SS]`.
fn cell_text(cell: &DataRef<'_>) -> String {
    match cell {
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        DataRef::Float(f) => f.to_string(),
        DataRef::String(s) => s.clone(),
        DataRef::SharedString(s) => (*s).to_owned(),
        DataRef::Bool(b) => b.to_string(),
        DataRef::DateTime(_) => match cell.as_datetime() {
            Some(dt) if dt.time() == chrono::NaiveTime::MIN => dt.format("%Y-%m-%d").to_string(),
            Some(dt) => dt.format("%Y-%m-%d %H:%M:%S").to_string(),
            None => String::new(),
        },
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::Error(_) | DataRef::Empty => String::new(),
    }
}

fn read_xlsx(
    input: Input,
    o: &Options,
    tx: &mpsc::Sender<Msg>,
    counter: &Arc<AtomicU64>,
    total_tx: &std::sync::mpsc::Sender<u64>,
) -> Result<(), SourceError> {
    match input {
        Input::Bytes(b) => read_book(Cursor::new(b), "workbook", o, tx, counter, total_tx),
        Input::File(path) => {
            let shown = path.display().to_string();
            let file = std::fs::File::open(&path).map_err(|e| SourceError::Open {
                path: shown.clone(),
                message: e.to_string(),
            })?;
            read_book(BufReader::new(file), &shown, o, tx, counter, total_tx)
        }
    }
}

fn read_book<RS: Read + std::io::Seek>(
    reader: RS,
    name: &str,
    o: &Options,
    tx: &mpsc::Sender<Msg>,
    counter: &Arc<AtomicU64>,
    total_tx: &std::sync::mpsc::Sender<u64>,
) -> Result<(), SourceError> {
    let mut book: Xlsx<RS> = Xlsx::new(reader).map_err(|e| SourceError::Open {
        path: name.to_owned(),
        message: e.to_string(),
    })?;
    let names = book.sheet_names();
    let sheet = match &o.sheet {
        Some(s) if names.contains(s) => s.clone(),
        Some(s) => return Err(SourceError::NoSheet(s.clone(), names.join(", "))),
        None => names
            .first()
            .cloned()
            .ok_or_else(|| SourceError::NoSheet("(first)".into(), String::new()))?,
    };
    let mut cells = book
        .worksheet_cells_reader(&sheet)
        .map_err(|e| SourceError::Open {
            path: sheet.clone(),
            message: e.to_string(),
        })?;
    let _ = total_tx.send(u64::from(cells.dimensions().end.0) + 1);
    let mut current: Option<(u64, Vec<String>)> = None;
    let mut header_sent = false;
    let emit = |row: (u64, Vec<String>), header_sent: &mut bool| -> bool {
        let (number, values) = row;
        counter.store(number, Ordering::Relaxed);
        if number < o.header_row {
            return true;
        }
        if number == o.header_row {
            *header_sent = true;
            return tx
                .blocking_send(Msg::Header(
                    values.into_iter().map(|h| h.trim().to_owned()).collect(),
                ))
                .is_ok();
        }
        if !*header_sent {
            let _ = tx.blocking_send(Msg::Failed(SourceError::NoHeader(o.header_row)));
            return false;
        }
        if number <= o.skip_through {
            return true;
        }
        tx.blocking_send(Msg::Row(Row {
            number,
            cells: Ok(values),
        }))
        .is_ok()
    };
    loop {
        let next = cells.next_cell().map_err(|e| SourceError::Parse {
            row: current.as_ref().map_or(0, |c| c.0),
            message: e.to_string(),
        })?;
        let Some(cell) = next else { break };
        let (r, c) = cell.get_position();
        let number = u64::from(r) + 1;
        if current.as_ref().is_some_and(|(n, _)| *n != number)
            && let Some(done) = current.take()
            && !emit(done, &mut header_sent)
        {
            return Ok(());
        }
        let row = current.get_or_insert_with(|| (number, Vec::new()));
        let c = c as usize;
        if row.1.len() <= c {
            row.1.resize(c + 1, String::new());
        }
        row.1[c] = cell_text(cell.get_value());
    }
    if let Some(done) = current.take() {
        emit(done, &mut header_sent);
    }
    if !header_sent {
        return Err(SourceError::NoHeader(o.header_row));
    }
    Ok(())
}
