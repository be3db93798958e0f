//! A Secret or ConfigMap volume as kubelet lays it out: `..data` points at a timestamped
//! directory and the visible files are symlinks through `..data`, so an update swaps every file
//! at once.

use std::path::PathBuf;

pub struct MountedVolume {
    dir: tempfile::TempDir,
    version: usize,
}

impl MountedVolume {
    pub fn new(files: &[(&str, &str)]) -> MountedVolume {
        let volume = MountedVolume {
            dir: tempfile::tempdir().unwrap(),
            version: 0,
        };
        let root = volume.dir.path();
        volume.write_version(0, files);
        std::os::unix::fs::symlink("..v0", root.join("..data")).unwrap();
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), root.join(name)).unwrap();
        }
        volume
    }

    fn write_version(&self, version: usize, files: &[(&str, &str)]) {
        let dir = self.dir.path().join(format!("..v{version}"));
        std::fs::create_dir(&dir).unwrap();
        for (name, content) in files {
            std::fs::write(dir.join(name), content).unwrap();
        }
    }

    /// Kubelet's atomic update: new directory, new symlink, rename over `..data`. The files are
    /// the ones the volume was made with.
    pub fn swap(&mut self, files: &[(&str, &str)]) {
        self.version += 1;
        self.write_version(self.version, files);
        let root = self.dir.path();
        std::os::unix::fs::symlink(format!("..v{}", self.version), root.join("..data_tmp")).unwrap();
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    }

    /// Where `name` is seen.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
