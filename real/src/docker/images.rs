//! The images a docker run uses, built `FROM scratch` from in-memory tar contexts (no
//! registry is reachable).
//!
//! Two kinds of image, and why:
//! - **Base images**, shared between runs and cached by content: `lifeboat-node:<hash>`
//!   (the static `lifeboat` binary, which runs the node daemon and the doubles) and
//!   `lifeboat-etcd:<hash>` (Debian's `etcd` and, when it is dynamically linked, the
//!   libraries `ldd` names). They carry the label `lifeboat.cache` and no run label:
//!   they belong to no run, so a repeated run does not rebuild them, and
//!   `lifeboat cleanup --backend docker --all` removes them.
//! - **Run images**, one per kind per run: `FROM` the base image plus the label
//!   `lifeboat.run=<run id>`, tagged `lifeboat-run-<run id>-<kind>`. Every container of
//!   the run starts from these, and teardown removes them, so nothing of a run is left;
//!   they add no layers, so building one takes well under a second.

use anyhow::{anyhow, Context};
use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Every label lifeboat puts on what it creates.
pub const LABEL: &str = "lifeboat";
/// The label naming the run a resource belongs to.
pub const RUN_LABEL: &str = "lifeboat.run";
/// The label of the shared base images.
pub const CACHE_LABEL: &str = "lifeboat.cache";

/// Whether the ELF file at `path` is statically linked (has no program interpreter).
///
/// `--node-binary` is user input: the `object` crate reads the headers with every offset
/// checked, so a truncated or hostile file is an error, never a panic.
pub fn is_static_elf(path: &Path) -> anyhow::Result<bool> {
    use object::elf::{FileHeader64, PT_INTERP};
    use object::read::elf::{FileHeader, ProgramHeader};
    use object::Endianness;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let not_elf =
        |why: String| anyhow::anyhow!("{} is not a 64-bit ELF executable: {why}", path.display());
    let header = FileHeader64::<Endianness>::parse(&*bytes).map_err(|e| not_elf(e.to_string()))?;
    let endian = header.endian().map_err(|e| not_elf(e.to_string()))?;
    let segments = header
        .program_headers(endian, &*bytes)
        .map_err(|e| not_elf(e.to_string()))?;
    Ok(!segments.iter().any(|p| p.p_type(endian) == PT_INTERP))
}

/// The shared libraries a dynamically linked binary needs, as `ldd` lists them.
fn libraries(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if is_static_elf(binary)? {
        return Ok(Vec::new());
    }
    let out = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .with_context(|| format!("running ldd on {}", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux… (0x…)`
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// A build context: files (path in the image, bytes, mode) and a Dockerfile.
struct BuildContext {
    files: Vec<(String, Vec<u8>, u32)>,
}

impl BuildContext {
    fn tar(&self, dockerfile: &str) -> anyhow::Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |name: &str, bytes: &[u8], mode: u32| -> anyhow::Result<()> {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(mode);
            h.set_cksum();
            b.append_data(&mut h, name, bytes)
                .with_context(|| format!("adding {name} to the build context"))
        };
        add("Dockerfile", dockerfile.as_bytes(), 0o644)?;
        for (name, bytes, mode) in &self.files {
            add(name, bytes, *mode)?;
        }
        b.into_inner().context("finishing the build context")
    }

    fn hash(&self, dockerfile: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(dockerfile.as_bytes());
        for (name, bytes, mode) in &self.files {
            h.update(name.as_bytes());
            h.update(mode.to_le_bytes());
            h.update(Sha256::digest(bytes));
        }
        hex::encode(h.finalize())[..16].to_string()
    }
}

/// Builds `tag` from `tar`, failing with the builder's own error text.
async fn build(docker: &Docker, tag: &str, tar: Vec<u8>) -> anyhow::Result<()> {
    let opts = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    let mut stream = docker.build_image(opts, None, Some(bollard::body_full(tar.into())));
    let mut tail = Vec::new();
    while let Some(item) = stream.next().await {
        let info = item.with_context(|| format!("building image {tag}"))?;
        if let Some(e) = info.error_detail.and_then(|d| d.message) {
            return Err(anyhow!("building image {tag}: {e}"));
        }
        if let Some(s) = info.stream {
            tail.push(s);
        }
    }
    docker.inspect_image(tag).await.map_err(|e| {
        anyhow!(
            "image {tag} was not built ({e}); builder said: {}",
            tail.concat()
        )
    })?;
    Ok(())
}

async fn base_image(
    docker: &Docker,
    kind: &str,
    ctx: BuildContext,
    body: &str,
) -> anyhow::Result<String> {
    let dockerfile = format!("FROM scratch\n{body}LABEL {LABEL}=1 {CACHE_LABEL}={kind}\n");
    let tag = format!("lifeboat-{kind}:{}", ctx.hash(&dockerfile));
    if docker.inspect_image(&tag).await.is_ok() {
        return Ok(tag);
    }
    build(docker, &tag, ctx.tar(&dockerfile)?).await?;
    Ok(tag)
}

/// The base image holding the static `lifeboat` binary at `/lifeboat`.
pub async fn node_base(docker: &Docker, binary: &Path) -> anyhow::Result<String> {
    anyhow::ensure!(
        is_static_elf(binary)?,
        "{} is dynamically linked and cannot run in a FROM scratch image; build a static one with \
         RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release --target x86_64-unknown-linux-gnu \
         and pass it with --node-binary (or LIFEBOAT_NODE_BINARY)",
        binary.display()
    );
    let bytes = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    let ctx = BuildContext {
        files: vec![("lifeboat".into(), bytes, 0o755)],
    };
    base_image(
        docker,
        "node",
        ctx,
        "COPY lifeboat /lifeboat\nENTRYPOINT [\"/lifeboat\"]\n",
    )
    .await
}

/// The base image holding etcd at `/usr/bin/etcd`, with its libraries if it needs any.
pub async fn etcd_base(docker: &Docker, etcd: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(etcd).with_context(|| {
        format!(
            "reading {} (install Debian's etcd-server package: apt-get install etcd-server)",
            etcd.display()
        )
    })?;
    let mut files = vec![("usr/bin/etcd".to_string(), bytes, 0o755)];
    for lib in libraries(etcd)? {
        let b = std::fs::read(&lib).with_context(|| format!("reading {}", lib.display()))?;
        let name = lib.to_string_lossy().trim_start_matches('/').to_string();
        files.push((name, b, 0o755));
    }
    let copies: String = files
        .iter()
        .map(|(n, _, _)| format!("COPY {n} /{n}\n"))
        .collect();
    base_image(
        docker,
        "etcd",
        BuildContext { files },
        &format!("{copies}ENTRYPOINT [\"/usr/bin/etcd\"]\n"),
    )
    .await
}

/// The run's own image of `kind` on top of `base`, labelled with the run.
pub async fn run_image(
    docker: &Docker,
    run: &str,
    kind: &str,
    base: &str,
) -> anyhow::Result<String> {
    let tag = format!("lifeboat-run-{run}-{kind}:latest");
    let dockerfile = format!("FROM {base}\nLABEL {LABEL}=1 {RUN_LABEL}={run}\n");
    build(
        docker,
        &tag,
        BuildContext { files: Vec::new() }.tar(&dockerfile)?,
    )
    .await?;
    Ok(tag)
}

/// Filters for resources carrying lifeboat's label, or one run's.
pub fn filters(run: Option<&str>) -> HashMap<String, Vec<String>> {
    let label = match run {
        Some(r) => format!("{RUN_LABEL}={r}"),
        None => format!("{LABEL}=1"),
    };
    HashMap::from([("label".to_string(), vec![label])])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_executable_is_not_static() {
        // /bin/sh on Debian is a dynamically linked 64-bit ELF with a PT_INTERP segment.
        assert!(!is_static_elf(Path::new("/bin/sh")).expect("/bin/sh is an ELF file"));
    }

    #[test]
    fn truncated_and_foreign_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let sh = std::fs::read("/bin/sh").expect("/bin/sh is readable");
        // Cut inside the ELF header, then inside the program headers, then a non-ELF file.
        let cases: [(&str, Vec<u8>); 3] = [
            ("header", sh[..40].to_vec()),
            ("phdrs", sh[..70].to_vec()),
            ("text", b"#!/bin/sh\necho hi\n".to_vec()),
        ];
        for (name, bytes) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            let err = is_static_elf(&path).expect_err(name).to_string();
            assert!(
                err.contains("is not a 64-bit ELF executable"),
                "{name}: {err}"
            );
        }
    }
}
