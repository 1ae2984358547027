//! Aligned text tables, as the docker CLI prints them.

use std::io::Write;

/// Go's `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`, as the docker CLI uses.
pub(crate) fn write_table(out: &mut impl Write, table: &[Vec<String>]) -> std::io::Result<()> {
    let columns = table.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            let w = table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
                + 3;
            w.max(10)
        })
        .collect();
    for row in table {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}
