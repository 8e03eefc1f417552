//! The `berth.toml` that travels with an image: the project's own file, comments kept, with
//! `[image]` replaced by `base = "<image id>"` and `name` written out, so `berth up` on the other
//! side uses exactly the image that came along: nothing to build, nothing to pull.
//!
//! Secrets never enter it: `{ from-host = true }` entries stay names, read on the other host
//! when berth starts something there.

use toml_edit::{DocumentMut, Item, Table, value};

use crate::error::{Code, fail};

/// Pin `original` (the text of a `berth.toml`) to the image `id`.
pub fn pin(original: &str, name: &str, id: &str, source: &str) -> anyhow::Result<String> {
    let mut doc: DocumentMut = original.parse().map_err(|e| {
        fail(
            Code::BadInput,
            format!("cannot rewrite berth.toml: {e}"),
            "fix the file so `berth up` accepts it, then try again",
        )
    })?;
    if doc.get("name").is_none() {
        doc.insert("name", value(name));
    }
    let mut image = Table::new();
    image.insert("base", value(id));
    if let Some(mut key) = image.key_mut("base") {
        let note = if source == id {
            "# pinned by berth: the image travels with this file\n".to_string()
        } else {
            format!("# pinned by berth: the image that was {source}\n")
        };
        key.leaf_decor_mut().set_prefix(note);
    }
    doc.insert("image", Item::Table(image));
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec;

    const ORIGINAL: &str = r#"# my project
workdir = "/workspace"   # where the code is
mounts = [".:/workspace"]

[image]
base = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-devel"

[env]
PYTHONUNBUFFERED = "1"
HF_TOKEN = { from-host = true }   # never stored
"#;

    const ID: &str = "sha256:029cf1206f1fe36cae24ca65f6c6538147f8c731eafc38c2daf3d185c1205b84";

    #[test]
    fn pins_the_image_and_keeps_the_rest() {
        let text = pin(ORIGINAL, "sdcnet", ID, "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-devel").expect("pin");
        insta::assert_snapshot!(text);
        let dir = tempfile::tempdir().expect("tempdir");
        let parsed = spec::parse_str(&text, &dir.path().join("berth.toml")).expect("the pinned file parses");
        assert_eq!(parsed.image.base, ID);
        assert_eq!(parsed.name, "sdcnet");
        assert!(parsed.env.iter().any(|v| v.key == "HF_TOKEN" && v.value == spec::EnvValue::FromHost));
    }

    #[test]
    fn an_inline_or_dotted_image_table_is_replaced_too() {
        for original in ["image = { base = \"a:1\" }\n", "image.base = \"a:1\"\n", "name = \"kept\"\n"] {
            let text = pin(original, "x", ID, "a:1").expect("pin");
            let dir = tempfile::tempdir().expect("tempdir");
            let parsed = spec::parse_str(&text, &dir.path().join("berth.toml")).expect("parses");
            assert_eq!(parsed.image.base, ID, "{text}");
        }
    }
}
