//! `--token-auth-file`: upstream's static token file, one user per CSV
//! line: `token,user,uid[,"group1,group2"]`. Lines with fewer than three
//! fields are an error (as upstream); blank lines and `#` comments are
//! skipped.

use std::collections::HashMap;
use std::path::Path;

use crate::tls::UserInfo;

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("reading token file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "token file {path}, line {line}: must have at least 3 columns (token, user name, user uid), found {found}"
    )]
    Columns {
        path: String,
        line: usize,
        found: usize,
    },
    #[error("token file {path}, line {line}: unterminated quote")]
    Quote { path: String, line: usize },
}

/// Splits one CSV record (double quotes protect commas; `""` is a quote).
fn fields(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            (',', false) => out.push(std::mem::take(&mut field).trim().to_owned()),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return None;
    }
    out.push(field.trim().to_owned());
    Some(out)
}

/// Parses the file's text into token → user.
pub fn parse(path: &str, text: &str) -> Result<HashMap<String, UserInfo>, TokenFileError> {
    let mut tokens = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let line_no = i + 1;
        let record = fields(trimmed).ok_or_else(|| TokenFileError::Quote {
            path: path.to_owned(),
            line: line_no,
        })?;
        if record.len() < 3 {
            return Err(TokenFileError::Columns {
                path: path.to_owned(),
                line: line_no,
                found: record.len(),
            });
        }
        let mut groups: Vec<String> = record
            .get(3)
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        groups.push("system:authenticated".into());
        tokens.insert(
            record[0].clone(),
            UserInfo {
                name: record[1].clone(),
                uid: record[2].clone(),
                groups,
                ..Default::default()
            },
        );
    }
    Ok(tokens)
}

/// Reads and parses `path`.
pub fn load(path: &Path) -> Result<HashMap<String, UserInfo>, TokenFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&shown, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_format() {
        let tokens = parse(
            "t.csv",
            "# comment\n\nabc123,alice,1001,\"devs,ops\"\n  def456 , bob , 1002\n",
        )
        .unwrap();
        let alice = &tokens["abc123"];
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.uid, "1001");
        assert_eq!(alice.groups, ["devs", "ops", "system:authenticated"]);
        assert_eq!(tokens["def456"].groups, ["system:authenticated"]);
    }

    #[test]
    fn short_lines_and_open_quotes_are_errors() {
        let e = parse("t.csv", "abc,alice\n").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("found 2"), "{e}");
        assert!(parse("t.csv", "a,b,c,\"x,y\n").is_err());
    }
}
