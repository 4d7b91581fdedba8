//! The CSV of an export: RFC 4180 (fields quoted where needed, CRLF line ends), UTF-8 with
//! a byte order mark and `;` as the separator, so that German Excel opens it as it is.
//! Columns: Datum; Uhrzeit; Absender; Nachricht.
//!
//! A field that begins with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading
//! apostrophe: a spreadsheet would otherwise run a client's "=HYPERLINK(…)" as a formula
//! (CSV injection, as OWASP describes it).

use crate::features::export::Line;

/// The byte order mark and the header line.
pub fn head() -> Vec<u8> {
    let mut out = "\u{feff}".as_bytes().to_vec();
    out.extend(rows(&[["Datum", "Uhrzeit", "Absender", "Nachricht"]]));
    out
}

/// The lines as CSV rows.
pub fn lines(lines: &[Line]) -> Vec<u8> {
    let rows: Vec<[String; 4]> = lines
        .iter()
        .map(|l| [l.date.clone(), l.time.clone(), defused(&l.sender), defused(&l.text)])
        .collect();
    self::rows(&rows)
}

/// Rows as CSV (`;`, CRLF, quoted where needed).
pub fn rows<R: AsRef<[S]>, S: AsRef<[u8]>>(rows: &[R]) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(b';')
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    for r in rows {
        // Writing into a Vec cannot fail.
        let _ = w.write_record(r.as_ref());
    }
    w.into_inner().unwrap_or_default()
}

/// A field a spreadsheet will not run as a formula.
pub fn defused(field: &str) -> String {
    if field.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{field}")
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(text: &str) -> Line {
        Line {
            ts: 0,
            date: "04.12.2026".into(),
            time: "09:05:00".into(),
            sender: "Anna".into(),
            text: text.into(),
        }
    }

    #[test]
    fn rows_are_rfc4180_with_semicolons_and_no_formulas() {
        assert_eq!(head(), "\u{feff}Datum;Uhrzeit;Absender;Nachricht\r\n".as_bytes());
        let out =
            String::from_utf8(lines(&[l("Hallo; \"du\"\nzweite Zeile"), l("=HYPERLINK(\"x\")"), l("Grüße")]))
                .expect("utf-8");
        assert_eq!(
            out,
            "04.12.2026;09:05:00;Anna;\"Hallo; \"\"du\"\"\nzweite Zeile\"\r\n04.12.2026;09:05:00;Anna;\"'=HYPERLINK(\"\"x\"\")\"\r\n04.12.2026;09:05:00;Anna;Grüße\r\n"
        );
    }
}
