//! Embeds the default policy library (`policies/`) so `serve --dev`, `check` and `test` work
//! from any directory without a copy of the repository, and stops a build whose patched crates
//! (`vendor/`, prepared by `make vendor`) do not hold the current `patches/`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    check_vendored_patches(&root);
    let library = root.join("policies");
    println!("cargo:rerun-if-changed={}", library.display());
    let mut files = Vec::new();
    collect(&library, &mut files);
    files.sort();
    let mut out = String::from("/// Files of the default policy library: (path relative to `policies/`, contents).\npub static FILES: &[(&str, &str)] = &[\n");
    for file in &files {
        let relative = file
            .strip_prefix(&library)
            .expect("collected under the library")
            .to_string_lossy()
            .replace('\\', "/");
        writeln!(
            out,
            "    ({relative:?}, include_str!({:?})),",
            file.display().to_string()
        )
        .expect("write to string");
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_policies.rs");
    std::fs::write(dest, out).expect("write embedded_policies.rs");
}

/// Every `patches/CRATE-VERSION.patch` must be the one `scripts/vendor.sh` applied to
/// `vendor/prepared-by-make-vendor/CRATE` (it leaves a copy there): a patch edited since, and
/// not applied, would otherwise build silently with the old one.
fn check_vendored_patches(root: &Path) {
    let patches = root.join("patches");
    println!("cargo:rerun-if-changed={}", patches.display());
    let Ok(entries) = std::fs::read_dir(&patches) else {
        return;
    };
    for patch in entries.flatten().map(|e| e.path()) {
        let Some(name) = patch
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".patch"))
        else {
            continue;
        };
        let Some((krate, _version)) = name.rsplit_once('-') else {
            continue;
        };
        let applied = root
            .join("vendor/prepared-by-make-vendor")
            .join(krate)
            .join(".portcullis-patch");
        println!("cargo:rerun-if-changed={}", patch.display());
        println!("cargo:rerun-if-changed={}", applied.display());
        if std::fs::read(&patch).ok() != std::fs::read(&applied).ok() {
            panic!(
                "vendor/prepared-by-make-vendor/{krate} does not hold the current {}: run `make vendor` (scripts/vendor.sh) first",
                patch.strip_prefix(root).unwrap_or(&patch).display()
            );
        }
    }
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            collect(&path, files);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("rego" | "yaml" | "yml" | "json")
        ) {
            files.push(path);
        }
    }
}
