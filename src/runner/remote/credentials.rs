//! Owns how API keys reach a unit run elsewhere (docs/distributed.md,
//! "Keys"): never through the job's command line or environment (Slurm
//! keeps a job's environment in its state files), but from a file the
//! user keeps on the shared file system, readable by the user only, named
//! by `CONDUCTOR_CREDENTIALS`. One `NAME=VALUE` a line; blank lines and
//! lines starting with `#` are skipped.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The variable naming the credentials file.
pub(crate) const VARIABLE: &str = "CONDUCTOR_CREDENTIALS";

/// The credentials of the file `CONDUCTOR_CREDENTIALS` names; none when
/// it names none. Why the file cannot be used, when it cannot.
pub(crate) fn read_named() -> Result<Vec<(String, String)>, String> {
    match std::env::var_os(VARIABLE) {
        Some(path) if !path.is_empty() => read(Path::new(&path)),
        _ => Ok(Vec::new()),
    }
}

/// The credentials in `path`, which must be a file only its owner can read.
pub(crate) fn read(path: &Path) -> Result<Vec<(String, String)>, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("{VARIABLE}: cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{VARIABLE}: {} is not a file", path.display()));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{VARIABLE}: {} can be read by others (mode {:o}): `chmod 600 {}`",
            path.display(),
            meta.mode() & 0o777,
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{VARIABLE}: cannot read {}: {e}", path.display()))?;
    let mut vars = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((name, value)) if is_name(name.trim()) => {
                vars.push((name.trim().to_string(), value.to_string()));
            }
            _ => {
                // The line is not echoed: it may hold a key.
                return Err(format!(
                    "{VARIABLE}: {}:{}: not `NAME=VALUE`",
                    path.display(),
                    n + 1
                ));
            }
        }
    }
    Ok(vars)
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_private_file_gives_its_variables_and_an_open_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.env");
        std::fs::write(&path, "# keys\n\nANTHROPIC_API_KEY=sk-1=2\n OTHER = x\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            read(&path).unwrap(),
            vec![
                ("ANTHROPIC_API_KEY".to_string(), "sk-1=2".to_string()),
                ("OTHER".to_string(), " x".to_string()),
            ]
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = read(&path).unwrap_err();
        assert!(e.contains("can be read by others (mode 640)"), "{e}");
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::write(&path, "sk-secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = read(&path).unwrap_err();
        assert!(e.ends_with(":1: not `NAME=VALUE`"), "{e}");
        assert!(!e.contains("sk-secret"), "{e}");
    }
}
