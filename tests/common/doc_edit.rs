//! Edits the docs show as fenced blocks naming a file (```` ```diff
//! policies/x.cedar ````), applied as a reader would apply them: shared by
//! tests/policy_tools.rs (the policy recipes) and tests/doc_commands.rs
//! (every document's blocks in order).

use std::path::Path;

/// Applies a diff block: the context and `-` lines, in order, must occur
/// exactly once in the file; they become the context and `+` lines.
pub fn apply_edit(file: &Path, lines: &[String]) {
    let text = std::fs::read_to_string(file).unwrap();
    let (mut from, mut to) = (Vec::new(), Vec::new());
    for l in lines {
        let (mark, rest) = l.split_at(l.len().min(1));
        match mark {
            " " | "" => {
                from.push(rest);
                to.push(rest);
            }
            "-" => from.push(rest),
            "+" => to.push(rest),
            other => panic!("diff line starts with {other:?}: {l}"),
        }
    }
    let (from, to) = (from.join("\n") + "\n", to.join("\n") + "\n");
    assert_eq!(
        text.matches(&from).count(),
        1,
        "{}: the recipe's context must occur once:\n{from}",
        file.display()
    );
    std::fs::write(file, text.replacen(&from, &to, 1)).unwrap();
}
