//! Parsing inspected bodies, with the checks that must come first.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("body is not valid JSON")]
    Malformed,
    #[error("body nests deeper than {0} levels")]
    TooDeep(usize),
}

/// Parses a JSON body after checking its nesting depth with a byte scan
/// (cheap, and no recursive descent on hostile input).
pub fn parse_json(bytes: &[u8], max_depth: usize) -> Result<Value, BodyError> {
    check_depth(bytes, max_depth)?;
    serde_json::from_slice(bytes).map_err(|_| BodyError::Malformed)
}

fn check_depth(bytes: &[u8], max_depth: usize) -> Result<(), BodyError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(BodyError::TooDeep(max_depth));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_limit_ignores_brackets_in_strings() {
        assert!(parse_json(br#"{"a":"[[[[[[[[[["}"#, 3).is_ok());
        assert_eq!(parse_json(b"[[[[1]]]]", 3), Err(BodyError::TooDeep(3)));
        assert_eq!(parse_json(b"{\"a\":", 3), Err(BodyError::Malformed));
    }
}
