//! Output, chosen in one place: a table or a line for people on stdout, or JSON with `--json`;
//! sentences about progress go to stderr, so stdout stays parseable.

use anyhow::Result;
use api::Credits;
use comfy_table::Table;
use serde::Serialize;

/// How a command prints its result.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Prints `value` as JSON, or as `human` renders it.
    pub fn emit<T: Serialize>(&self, value: &T, human: impl FnOnce(&T) -> String) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            let text = human(value);
            if !text.is_empty() {
                println!("{}", text.trim_end());
            }
        }
        Ok(())
    }

    /// A note for people (stderr; never in JSON output).
    pub fn note(&self, text: impl AsRef<str>) {
        eprintln!("{}", text.as_ref());
    }
}

/// A two-column table of (field, value).
pub fn fields<'a>(rows: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let mut table = Table::new();
    table.set_header(["", ""]);
    for (k, v) in rows {
        table.add_row([k.to_string(), v]);
    }
    table.to_string()
}

/// An amount as people read it.
pub fn credits(c: Credits) -> String {
    format!("{} credits", c.human())
}

/// The last characters of a long id, for tables.
pub fn short(id: &str) -> String {
    let n = id.chars().count();
    if n <= 12 {
        return id.to_string();
    }
    format!("…{}", id.chars().skip(n - 10).collect::<String>())
}
