//! Plain-text tables for people: left-aligned columns padded to the widest cell.

use crate::out;

/// A table of text cells.
#[derive(Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (as many cells as columns).
    pub fn row<const N: usize>(&mut self, cells: [&str; N]) {
        self.rows
            .push(cells.iter().map(|c| (*c).to_owned()).collect());
    }

    /// The table as lines.
    pub fn render(&self) -> Vec<String> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(c.chars().count());
                }
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let w = widths.get(i).copied().unwrap_or(0);
                    format!("{c:<w$}")
                })
                .collect();
            padded.join("  ").trim_end().to_owned()
        };
        let mut out = vec![line(&self.header)];
        for r in &self.rows {
            out.push(line(r));
        }
        if self.rows.is_empty() {
            out.push("(none)".to_owned());
        }
        out
    }

    /// Prints the table to stdout.
    pub fn print(&self) {
        for l in self.render() {
            out::line(&l);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pads_columns() {
        let mut t = super::Table::new(&["a", "bb"]);
        t.row(["xyz", "1"]);
        assert_eq!(t.render(), ["a    bb", "xyz  1"]);
    }
}
