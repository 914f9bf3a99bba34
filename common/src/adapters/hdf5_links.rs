//! Links in HDF5 files, resolved here rather than by libhdf5, so that no link can make the
//! server open a file outside what it serves.
//!
//! A detector writes a master file whose datasets are external links into data files beside it
//! (DECTRIS Eiger: `/entry/data/data_000001` -> `series_data_000001.h5:/entry/data/data`).
//! libhdf5 would follow such a link wherever it leads: an absolute name anywhere on the
//! machine, a relative one against the linking file's directory and then against the server's
//! working directory. Here a path inside a file is walked one link at a time: hard links are
//! taken as they are, soft links are read and walked in turn, and an external link is followed
//! only when its file lies in the directory of the file being served or below it (after
//! symbolic links are resolved), and only one external link deep.

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

/// Most soft and external links one path may pass through (a loop of soft links ends here).
const MAX_HOPS: usize = 16;

/// What a link in a group is.
#[derive(Debug, PartialEq)]
pub enum Link {
    /// A link to an object in the same file (the object itself).
    Hard,
    /// A path in the same file.
    Soft(String),
    /// A file (as written: relative to the linking file, or absolute) and a path in it.
    External { file: String, path: String },
}

/// The link `name` (one path component) of `group`, read without following it. The only
/// unsafe code of the project: the hdf5 crate reads no link values, so libhdf5 is called
/// directly, under the crate's library lock.
#[allow(unsafe_code)]
pub fn link(group: &hdf5::Group, name: &str) -> Result<Link, String> {
    use hdf5_sys::h5l::{H5L_info1_t, H5L_type_t, H5Lget_info1, H5Lget_val, H5Lunpack_elink_val};
    use hdf5_sys::h5p::H5P_DEFAULT;
    let c_name = CString::new(name).map_err(|_| format!("the name {name:?} holds a NUL byte"))?;
    let id = group.id();
    hdf5::sync::sync(|| {
        let mut info = H5L_info1_t::default();
        // SAFETY: `id` is an open group, `c_name` a NUL-terminated string and `info` a
        // properly sized out-parameter; the library lock is held.
        #[allow(deprecated)]
        let status = unsafe { H5Lget_info1(id, c_name.as_ptr(), &mut info, H5P_DEFAULT) };
        if status < 0 {
            return Err(format!("no link named {name:?}"));
        }
        let kind = info.type_;
        if kind == H5L_type_t::H5L_TYPE_HARD {
            return Ok(Link::Hard);
        }
        // SAFETY: for soft and user-defined links the union holds the value's size.
        let size = unsafe { *info.u.val_size() };
        if size == 0 || size > 1 << 16 {
            return Err(format!(
                "the link {name:?} has an implausible value ({size} bytes)"
            ));
        }
        let mut buf = vec![0u8; size];
        // SAFETY: `buf` has room for `size` bytes, the size libhdf5 reported.
        let status = unsafe {
            H5Lget_val(
                id,
                c_name.as_ptr(),
                buf.as_mut_ptr().cast(),
                size,
                H5P_DEFAULT,
            )
        };
        if status < 0 {
            return Err(format!("the link {name:?} cannot be read"));
        }
        match kind {
            H5L_type_t::H5L_TYPE_SOFT => {
                let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                Ok(Link::Soft(
                    String::from_utf8_lossy(&buf[..end]).into_owned(),
                ))
            }
            H5L_type_t::H5L_TYPE_EXTERNAL => {
                let mut flags = 0u32;
                let mut file: *const std::ffi::c_char = std::ptr::null();
                let mut path: *const std::ffi::c_char = std::ptr::null();
                // SAFETY: `buf` holds the link value; the returned pointers point into it and
                // are read before it is dropped.
                let status = unsafe {
                    H5Lunpack_elink_val(buf.as_ptr().cast(), size, &mut flags, &mut file, &mut path)
                };
                if status < 0 || file.is_null() || path.is_null() {
                    return Err(format!("the external link {name:?} cannot be decoded"));
                }
                // SAFETY: libhdf5 checked that both strings end inside `buf`.
                let (file, path) = unsafe { (CStr::from_ptr(file), CStr::from_ptr(path)) };
                Ok(Link::External {
                    file: file.to_string_lossy().into_owned(),
                    path: path.to_string_lossy().into_owned(),
                })
            }
            _ => Err(format!(
                "the link {name:?} is of a user-defined kind, not followed"
            )),
        }
    })
}

/// The file an external link names, if it may be opened: a relative name is taken against the
/// directory of the linking file (`from`), as libhdf5 does first; the result must exist and
/// lie under `root` once symbolic links are resolved.
pub fn target_file(root: &Path, from: &Path, name: &str) -> Result<PathBuf, String> {
    let named = Path::new(name);
    let joined = match named.is_absolute() {
        true => named.to_path_buf(),
        false => from.parent().unwrap_or(Path::new("/")).join(named),
    };
    let shown = named
        .file_name()
        .map_or(name.into(), |n| n.to_string_lossy());
    let real = joined
        .canonicalize()
        .map_err(|_| format!("it links to {shown}, which does not exist"))?;
    let real_root = root
        .canonicalize()
        .map_err(|e| format!("the directory of the file cannot be resolved ({e})"))?;
    if !real.starts_with(&real_root) || !real.is_file() {
        return Err(format!(
            "it links to {shown}, outside the directory of the file that links to it; \
             external links are followed only into that directory and below"
        ));
    }
    Ok(real)
}

/// Where a path inside a file leads, through its links: the file that holds the object, its
/// location on disk, and the object's path there (hard links only, safe to open directly).
pub struct Resolved {
    pub file: hdf5::File,
    pub path: PathBuf,
    pub object: String,
}

impl Resolved {
    /// Whether the object lies in another file than `file`.
    pub fn elsewhere(&self, file: &hdf5::File) -> bool {
        self.file.filename() != file.filename()
    }
}

/// Walks `object` in `file` (stored at `path`) one link at a time. External links are followed
/// into files under `path`'s directory, at most one deep.
pub fn resolve(file: &hdf5::File, path: &Path, object: &str) -> Result<Resolved, String> {
    let root = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut at = Resolved {
        file: file.clone(),
        path: path.to_path_buf(),
        object: String::new(),
    };
    let mut done: Vec<String> = Vec::new();
    let mut todo: VecDeque<String> = parts(object).collect();
    let (mut hops, mut external) = (0, false);
    while let Some(name) = todo.pop_front() {
        let group_path = format!("/{}", done.join("/"));
        let group = at
            .file
            .group(&group_path)
            .map_err(|_| format!("{group_path} is not a group"))?;
        let link = link(&group, &name).map_err(|e| format!("{group_path}: {e}"))?;
        if !matches!(link, Link::Hard) {
            hops += 1;
            if hops > MAX_HOPS {
                return Err(format!(
                    "{object} passes through more than {MAX_HOPS} links (a loop?)"
                ));
            }
        }
        match link {
            Link::Hard => done.push(name),
            Link::Soft(target) => {
                if target.starts_with('/') {
                    done.clear();
                }
                for part in parts(&target).rev() {
                    todo.push_front(part);
                }
            }
            Link::External { file, path } => {
                if external {
                    return Err(format!(
                        "{object}: an external link in a linked file ({file}) is not followed"
                    ));
                }
                external = true;
                let real = target_file(&root, &at.path, &file)?;
                at.file = hdf5::File::open(&real).map_err(|e| {
                    format!(
                        "it links to {}, which is not a readable HDF5 file ({e})",
                        file
                    )
                })?;
                at.path = real;
                done.clear();
                for part in parts(&path).rev() {
                    todo.push_front(part);
                }
            }
        }
    }
    at.object = format!("/{}", done.join("/"));
    Ok(at)
}

fn parts(path: &str) -> impl DoubleEndedIterator<Item = String> + '_ {
    path.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .map(str::to_string)
}
