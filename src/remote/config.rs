//! Named servers: `ssh://user@host[:port][/path]` addresses kept in the user's config folder
//! (`$XDG_CONFIG_HOME/berth/remotes.toml`, else `~/.config/berth/remotes.toml`; folder 0700,
//! file 0600, written atomically).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::error::{Code, fail};

/// One server's address, checked: nothing in it can become an ssh option or a shell word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// Where projects live there (absolute, or `~/…` under the ssh user's home); default `~/berth`.
    pub base: Option<String>,
}

impl RemoteUrl {
    /// `user@host` (or `host`): what ssh is given after `--`.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }

    /// The address as written back (`ssh://user@host:port/path`).
    pub fn to_url(&self) -> String {
        let mut s = format!("ssh://{}", self.destination());
        if let Some(p) = self.port {
            s.push_str(&format!(":{p}"));
        }
        if let Some(b) = &self.base {
            if let Some(rest) = b.strip_prefix("~/") {
                s.push_str(&format!("/~/{rest}"));
            } else {
                s.push_str(b);
            }
        }
        s
    }
}

fn bad_url(url: &str, why: &str) -> anyhow::Error {
    fail(
        Code::BadInput,
        format!("`{url}` is not a server address berth can use: {why}"),
        "write it as ssh://user@host[:port][/path], e.g. ssh://me@gpu-box or ssh://me@10.0.0.5:2222/scratch/me",
    )
}

/// Parse `ssh://[user@]host[:port][/path]`.
pub fn parse_url(url: &str) -> anyhow::Result<RemoteUrl> {
    let Some(rest) = url.strip_prefix("ssh://") else {
        return Err(bad_url(url, "it must start with ssh://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if let Some(u) = user
        && (u.is_empty()
            || u.starts_with('-')
            || !u.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
    {
        return Err(bad_url(url, "the user name may hold only letters, digits, '.', '_' and '-'"));
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let Some((h, after)) = v6.split_once(']') else {
            return Err(bad_url(url, "an IPv6 address needs its closing ']'"));
        };
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad_url(url, "text after ']' must be :PORT"))?),
        };
        if h.is_empty() || !h.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return Err(bad_url(url, "the IPv6 address is malformed"));
        }
        (h.to_string(), port)
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(bad_url(url, "the host is missing"));
    }
    if host.starts_with('-') || !host.chars().all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c)) {
        return Err(bad_url(url, "the host may hold only letters, digits, '.', '-' and '_'"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(bad_url(url, &format!("the port `{p}` is not a number from 1 to 65535"))),
        },
    };
    let base = match path {
        None | Some("/") => None,
        Some(p) => {
            let p = p.trim_end_matches('/');
            if p.split('/').any(|part| part == "..") {
                return Err(bad_url(url, "the path may not contain `..`"));
            }
            if p.chars().any(|c| c.is_control()) {
                return Err(bad_url(url, "the path holds a control character"));
            }
            match p.strip_prefix("/~") {
                Some("") => None,
                Some(rest) if rest.starts_with('/') => Some(format!("~{rest}")),
                _ => Some(p.to_string()),
            }
        }
    };
    Ok(RemoteUrl { user: user.map(str::to_string), host, port, base })
}

/// A remote's name: what `--on NAME` takes.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        return Ok(());
    }
    Err(fail(
        Code::BadInput,
        format!("`{name}` is not a name berth can give a server"),
        "use letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit), e.g. gpu1",
    ))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    #[serde(default)]
    remotes: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    url: String,
}

/// The named servers of this user.
#[derive(Debug, Default)]
pub struct Remotes {
    pub path: PathBuf,
    pub entries: BTreeMap<String, RemoteUrl>,
}

/// Where the file lives.
pub fn path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) if PathBuf::from(&dir).is_absolute() => PathBuf::from(dir),
        _ => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => {
                return Err(fail(
                    Code::BadInput,
                    "cannot find your config folder: neither XDG_CONFIG_HOME nor HOME is set",
                    "set HOME (or XDG_CONFIG_HOME) to your home folder",
                ));
            }
        },
    };
    Ok(base.join("berth").join("remotes.toml"))
}

impl Remotes {
    pub fn load() -> anyhow::Result<Remotes> {
        let path = path()?;
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Remotes { path, ..Remotes::default() });
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let file: File = toml::from_str(&text).map_err(|e| {
            fail(
                Code::BadInput,
                format!("{} is not a file berth can read: {}", path.display(), e.message()),
                "fix it by hand, or remove it and add the servers again with `berth remote add`",
            )
        })?;
        let mut entries = BTreeMap::new();
        for (name, entry) in file.remotes {
            let url = parse_url(&entry.url)
                .with_context(|| format!("the server `{name}` in {}", path.display()))?;
            entries.insert(name, url);
        }
        Ok(Remotes { path, entries })
    }

    pub fn save(&self) -> anyhow::Result<()> {
        let file = File {
            remotes: self.entries.iter().map(|(n, u)| (n.clone(), Entry { url: u.to_url() })).collect(),
        };
        let text = toml::to_string(&file).context("writing the servers' file")?;
        if let Some(dir) = self.path.parent() {
            std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        crate::fsutil::write_atomic(&self.path, text.as_bytes(), 0o600)
    }

    /// The server called `name`, or an error naming the ones there are.
    pub fn get(&self, name: &str) -> anyhow::Result<&RemoteUrl> {
        self.entries.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.entries.keys().map(String::as_str).collect();
            fail(
                Code::BadInput,
                format!("no server is called `{name}`"),
                if known.is_empty() {
                    format!("add it: berth remote add {name} ssh://user@host")
                } else {
                    format!(
                        "known servers: {} (or add it: berth remote add {name} ssh://user@host)",
                        known.join(", ")
                    )
                },
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_round_trip() {
        let u = parse_url("ssh://me@gpu-box:2222/scratch/me").unwrap();
        assert_eq!(u.destination(), "me@gpu-box");
        assert_eq!(u.port, Some(2222));
        assert_eq!(u.base.as_deref(), Some("/scratch/me"));
        assert_eq!(u.to_url(), "ssh://me@gpu-box:2222/scratch/me");
        let h = parse_url("ssh://host").unwrap();
        assert_eq!((h.user, h.port, h.base), (None, None, None));
        let t = parse_url("ssh://me@host/~/work/").unwrap();
        assert_eq!(t.base.as_deref(), Some("~/work"));
        assert_eq!(parse_url(&t.to_url()).unwrap(), t);
        let v6 = parse_url("ssh://me@[::1]:22").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", Some(22)));
    }

    #[test]
    fn bad_addresses_say_why() {
        for (url, why) in [
            ("me@host", "must start with ssh://"),
            ("ssh://", "host is missing"),
            ("ssh://me@-oProxyCommand=x", "host may hold"),
            ("ssh://-x@host", "user name"),
            ("ssh://me@host:0", "port `0`"),
            ("ssh://me@host:99999", "port `99999`"),
            ("ssh://me@host:22/a/../b", "`..`"),
            ("ssh://me@ho st", "host may hold"),
        ] {
            let err = format!("{:#}", parse_url(url).unwrap_err());
            assert!(err.contains(why), "{url}: {err}");
        }
    }

    #[test]
    fn names_are_plain_words() {
        check_name("gpu1").unwrap();
        check_name("a.b_c-d").unwrap();
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
