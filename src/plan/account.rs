//! The script that gives the host user a name and a home inside the container.
//!
//! Run as root after every start that berth makes (it is idempotent). It edits `/etc/passwd` and
//! `/etc/group` only when the uid or gid has no entry yet, so image users are never changed, and
//! it needs nothing but a POSIX shell, `grep`, `mkdir` and `chown` (busybox is enough).

use super::Account;

/// Quote a value for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@".contains(c)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub fn setup_script(acct: &Account) -> String {
    format!(
        r#"set -e
name={name}; uid={uid}; gid={gid}; home={home}
if ! grep -q "^[^:]*:[^:]*:$gid:" /etc/group 2>/dev/null; then
  gname=$name; grep -q "^$gname:" /etc/group 2>/dev/null && gname="g$gid"
  echo "$gname:x:$gid:" >> /etc/group
fi
if ! grep -q "^[^:]*:[^:]*:$uid:" /etc/passwd 2>/dev/null; then
  grep -q "^$name:" /etc/passwd 2>/dev/null && name="u$uid"
  shell=/bin/sh; [ -x /bin/bash ] && shell=/bin/bash
  echo "$name:x:$uid:$gid:berth user:$home:$shell" >> /etc/passwd
fi
mkdir -p "$home"
if [ ! -e "$home/.profile" ]; then
  cat > "$home/.profile" <<'PROFILE'
# Written by berth: login shells get conda (when the image has it) and ~/.bashrc.
for f in /opt/conda/etc/profile.d/conda.sh /usr/local/etc/profile.d/conda.sh; do
  [ -f "$f" ] && . "$f" && break
done
[ -n "$BASH_VERSION" ] && [ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"
true
PROFILE
  chown "$uid:$gid" "$home/.profile"
fi
chown "$uid:$gid" "$home"
"#,
        name = sh_quote(&acct.name),
        uid = acct.uid,
        gid = acct.gid,
        home = sh_quote(&acct.home),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_plain_words_and_wraps_the_rest() {
        assert_eq!(sh_quote("alice"), "alice");
        assert_eq!(sh_quote("/home/a b"), "'/home/a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn script_names_the_account() {
        let s =
            setup_script(&Account { name: "alice".into(), uid: 1000, gid: 1000, home: "/home/alice".into() });
        assert!(s.contains("name=alice; uid=1000; gid=1000; home=/home/alice"));
    }
}
