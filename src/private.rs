//! Owns making folders that only their user can read (docs/security.md,
//! "Secrets"): the run store holds what agents did, and is nobody else's to
//! read, so every folder conductor makes for it is `0700`.

use std::path::Path;

/// Creates `dir` and its missing parents, each readable by this user only.
pub(crate) fn create_dir_all(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Makes a folder conductor made before readable by this user only.
pub(crate) fn restrict(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}
