//! A unified-style line diff for `--dry-run`: what the file is and what it would become.
//!
//! daemon.json files are tens of lines, so a plain LCS table is simplest and exact; hunks keep
//! two lines of context, like `diff -U2`.

const CONTEXT: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same,
    Removed,
    Added,
}

/// `--- old` / `+++ new` headers, then hunks of changed lines; empty when the texts are equal.
pub fn diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = edit_script(&a, &b);
    if ops.iter().all(|(op, _)| *op == Op::Same) {
        return String::new();
    }
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    // Which script positions to print: each change plus its context.
    let mut show = vec![false; ops.len()];
    for (i, (op, _)) in ops.iter().enumerate() {
        if *op != Op::Same {
            let lo = i.saturating_sub(CONTEXT);
            let hi = (i + CONTEXT + 1).min(ops.len());
            show[lo..hi].iter_mut().for_each(|s| *s = true);
        }
    }
    let mut i = 0;
    while i < ops.len() {
        if !show[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < ops.len() && show[i] {
            i += 1;
        }
        let (old_start, new_start) = positions(&ops[..start]);
        let hunk = &ops[start..i];
        let old_len = hunk.iter().filter(|(op, _)| *op != Op::Added).count();
        let new_len = hunk.iter().filter(|(op, _)| *op != Op::Removed).count();
        out.push_str(&format!("@@ -{},{old_len} +{},{new_len} @@\n", old_start + 1, new_start + 1));
        for (op, line) in hunk {
            let mark = match op {
                Op::Same => ' ',
                Op::Removed => '-',
                Op::Added => '+',
            };
            out.push_str(&format!("{mark}{line}\n"));
        }
    }
    out
}

/// Lines of the old and new text before a script position.
fn positions(ops: &[(Op, &str)]) -> (usize, usize) {
    let old = ops.iter().filter(|(op, _)| *op != Op::Added).count();
    let new = ops.iter().filter(|(op, _)| *op != Op::Removed).count();
    (old, new)
}

/// The shortest edit script by longest common subsequence; removals before additions.
fn edit_script<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(Op, &'a str)> {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::with_capacity(n + m);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((Op::Same, a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push((Op::Removed, a[i]));
            i += 1;
        } else {
            ops.push((Op::Added, b[j]));
            j += 1;
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(diff("a\nb\n", "a\nb\n", "x", "y"), "");
    }

    #[test]
    fn a_changed_line_shows_with_two_lines_of_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n";
        let new = "1\n2\n3\nfour\n5\n6\n7\n";
        assert_eq!(diff(old, new, "a", "b"), "--- a\n+++ b\n@@ -2,5 +2,5 @@\n 2\n 3\n-4\n+four\n 5\n 6\n");
    }

    #[test]
    fn nearby_changes_share_a_hunk_and_distant_ones_do_not() {
        let old = "{\n  \"a\": 1,\n  \"b\": 2,\n  \"c\": 3,\n  \"d\": 4,\n  \"e\": 5\n}\n";
        let new = "{\n  \"a\": 0,\n  \"b\": 2,\n  \"c\": 3,\n  \"d\": 4,\n  \"e\": 5,\n  \"f\": 6\n}\n";
        assert_eq!(
            diff(old, new, "a", "b"),
            "--- a\n+++ b\n@@ -1,7 +1,8 @@\n {\n-  \"a\": 1,\n+  \"a\": 0,\n   \"b\": 2,\n   \"c\": 3,\n   \"d\": 4,\n\
             -  \"e\": 5\n+  \"e\": 5,\n+  \"f\": 6\n }\n"
        );
        let old: String = (1..=12).map(|i| format!("{i}\n")).collect();
        let new: String = (1..=12)
            .map(|i| match i {
                2 => "two\n".to_string(),
                11 => "eleven\n".to_string(),
                _ => format!("{i}\n"),
            })
            .collect();
        assert_eq!(
            diff(&old, &new, "a", "b"),
            "--- a\n+++ b\n@@ -1,4 +1,4 @@\n 1\n-2\n+two\n 3\n 4\n@@ -9,4 +9,4 @@\n 9\n 10\n-11\n+eleven\n 12\n"
        );
    }
}
