//! Images and `.npy` arrays: a single TIFF (one page is 2-D, several pages stack along a
//! first axis), a sequence of TIFF or `.npy` files read as one array with a leading axis over
//! the files (`tiled serve directory` groups `<stem><digits>.tif` this way), and a single
//! `.npy` file. One block is one page or one file, so reading a frame decodes only it; a
//! single `.npy` is read by seeking to the rows a block needs.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Map;
use tiff::decoder::{Decoder, DecodingResult};

use super::npy_header::{self, NpyHeader};
use super::{Adapter, AdapterError, ArrayReader, DataSource};
use crate::array::ArrayData;
use crate::chunks::ChunkGrid;
use crate::dtype::{BuiltinDType, DataType, Kind};
use crate::structure::{ArrayStructure, StructureFamily};

pub const TIFF_MIMETYPE: &str = "image/tiff";
pub const TIFF_SEQUENCE_MIMETYPE: &str = "multipart/related;type=image/tiff";
pub const NPY_MIMETYPE: &str = "application/x-npy";
pub const NPY_SEQUENCE_MIMETYPE: &str = "multipart/related;type=application/x-npy";

/// Blocks of a single `.npy` file are cut along the first axis to about this size.
const NPY_BLOCK_BYTES: usize = 8 << 20;

fn bad(path: &Path, why: impl std::fmt::Display) -> AdapterError {
    AdapterError::BadSource(format!("{}: {why}", super::shown(path)))
}

// ---------------------------------------------------------------------------------------------
// TIFF

fn tiff_decoder(path: &Path) -> Result<Decoder<std::io::BufReader<std::fs::File>>, AdapterError> {
    let f = std::fs::File::open(path).map_err(|e| bad(path, format!("cannot be opened ({e})")))?;
    // The decoder's default limits bound what a damaged header can make it allocate.
    Decoder::new(std::io::BufReader::new(f))
        .map_err(|e| bad(path, format!("not a readable TIFF file ({e})")))
}

/// One decoded page: its shape (`[h, w]` or `[h, w, samples]`), type and native bytes.
fn tiff_page(
    d: &mut Decoder<std::io::BufReader<std::fs::File>>,
    path: &Path,
) -> Result<(Vec<usize>, DataType, Vec<u8>), AdapterError> {
    let (w, h) = d
        .dimensions()
        .map_err(|e| bad(path, format!("not a readable TIFF page ({e})")))?;
    // Every plane of a planar (PlanarConfiguration 2) page, one after the other.
    let mut image = DecodingResult::U8(Vec::new());
    d.read_image_to_buffer(&mut image)
        .map_err(|e| bad(path, format!("the page cannot be decoded ({e})")))?;
    let b = |k, n| DataType::Builtin(BuiltinDType::new(k, n));
    let (dtype, bytes) = match image {
        DecodingResult::U8(v) => (b(Kind::UInt, 1), v),
        DecodingResult::U16(v) => (b(Kind::UInt, 2), bytemuck::cast_slice(&v).to_vec()),
        DecodingResult::U32(v) => (b(Kind::UInt, 4), bytemuck::cast_slice(&v).to_vec()),
        DecodingResult::U64(v) => (b(Kind::UInt, 8), bytemuck::cast_slice(&v).to_vec()),
        DecodingResult::I8(v) => (b(Kind::Int, 1), bytemuck::cast_slice(&v).to_vec()),
        DecodingResult::I16(v) => (b(Kind::Int, 2), bytemuck::cast_slice(&v).to_vec()),
        DecodingResult::I32(v) => (b(Kind::Int, 4), bytemuck::cast_slice(&v).to_vec()),
        DecodingResult::I64(v) => (b(Kind::Int, 8), bytemuck::cast_slice(&v).to_vec()),
        DecodingResult::F32(v) => (b(Kind::Float, 4), bytemuck::cast_slice(&v).to_vec()),
        DecodingResult::F64(v) => (b(Kind::Float, 8), bytemuck::cast_slice(&v).to_vec()),
        DecodingResult::F16(v) => (
            b(Kind::Float, 2),
            v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
        ),
    };
    let (w, h) = (w as usize, h as usize);
    let samples = d
        .get_tag_u32(tiff::tags::Tag::SamplesPerPixel)
        .map_or(1, |n| n as usize);
    let planar = samples > 1
        && d.get_tag_u32(tiff::tags::Tag::PlanarConfiguration)
            .is_ok_and(|c| c == 2);
    if bytes.len() != w * h * samples * dtype.itemsize() {
        return Err(bad(
            path,
            format!(
                "a page of {w}x{h} pixels with {samples} samples decodes to {} bytes, not {}",
                bytes.len(),
                w * h * samples * dtype.itemsize()
            ),
        ));
    }
    // tifffile.imread gives a planar page samples first, a chunky one samples last.
    let shape = match (samples, planar) {
        (1, _) => vec![h, w],
        (_, true) => vec![samples, h, w],
        (_, false) => vec![h, w, samples],
    };
    Ok((shape, dtype, bytes))
}

fn page_count(path: &Path) -> Result<usize, AdapterError> {
    let mut d = tiff_decoder(path)?;
    let mut n = 1;
    while d.more_images() {
        d.next_image()
            .map_err(|e| bad(path, format!("page {n} cannot be read ({e})")))?;
        n += 1;
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// .npy

/// The header of the `.npy` file at `path`, checked against the file's size.
fn npy_header(path: &Path) -> Result<NpyHeader, AdapterError> {
    let f = std::fs::File::open(path).map_err(|e| bad(path, format!("cannot be opened ({e})")))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let h = npy_header::read(&mut std::io::BufReader::new(f)).map_err(|why| bad(path, why))?;
    let need = h
        .shape
        .iter()
        .try_fold(h.stored_itemsize as u64, |n, &d| n.checked_mul(d as u64))
        .ok_or_else(|| bad(path, format!("the .npy shape {:?} is too large", h.shape)))?;
    let end = h
        .offset
        .checked_add(need)
        .ok_or_else(|| bad(path, format!("the .npy shape {:?} is too large", h.shape)))?;
    if size < end {
        return Err(bad(
            path,
            format!("the .npy file is truncated ({size} bytes, {end} needed)"),
        ));
    }
    Ok(h)
}

/// The axis a single `.npy` file is cut into blocks along: the one whose slices are
/// contiguous in the file (the first, or the last for Fortran order).
fn npy_block_axis(h: &NpyHeader) -> usize {
    if h.fortran_order {
        h.shape.len().saturating_sub(1)
    } else {
        0
    }
}

fn read_npy_range(path: &Path, offset: u64, len: usize) -> Result<Vec<u8>, AdapterError> {
    let mut f =
        std::fs::File::open(path).map_err(|e| bad(path, format!("cannot be opened ({e})")))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| bad(path, format!("cannot be read ({e})")))?;
    let mut out = vec![0u8; len];
    f.read_exact(&mut out)
        .map_err(|e| bad(path, format!("cannot be read ({e})")))?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Structures and sources

/// Which kind of image source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind2 {
    Tiff,
    TiffSequence,
    Npy,
    NpySequence,
}

fn kind_of(mimetype: &str) -> Option<Kind2> {
    Some(match mimetype {
        TIFF_MIMETYPE => Kind2::Tiff,
        TIFF_SEQUENCE_MIMETYPE => Kind2::TiffSequence,
        NPY_MIMETYPE => Kind2::Npy,
        NPY_SEQUENCE_MIMETYPE => Kind2::NpySequence,
        _ => return None,
    })
}

/// The structure of one file: TIFF pages (stacked when more than one) or a `.npy` array.
fn single(path: &Path, npy: bool) -> Result<ArrayStructure, AdapterError> {
    if npy {
        let h = npy_header(path)?;
        // Blocks are slabs along the axis that is contiguous in the file. The data's size fits
        // the file (checked above), but a zero-length dimension makes it 0 whatever the others
        // are: the slabs of an empty array are one block.
        let axis = npy_block_axis(&h);
        let slab = h
            .shape
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != axis)
            .try_fold(h.stored_itemsize, |n, (_, &d)| n.checked_mul(d))
            .ok_or_else(|| bad(path, format!("the .npy shape {:?} is too large", h.shape)))?;
        let per_block = match slab {
            0 => h.shape.get(axis).copied().unwrap_or(1),
            slab => (NPY_BLOCK_BYTES / slab).max(1),
        };
        let chunks = h
            .shape
            .iter()
            .enumerate()
            .map(|(i, &n)| super::regular_chunks(n, if i == axis { per_block } else { n }))
            .collect();
        return Ok(ArrayStructure {
            data_type: h.dtype,
            chunks,
            shape: h.shape,
            dims: None,
            resizable: false,
        });
    }
    let pages = page_count(path)?;
    let mut d = tiff_decoder(path)?;
    let description = d
        .get_tag_ascii_string(tiff::tags::Tag::ImageDescription)
        .ok();
    let (page, dtype, _) = tiff_page(&mut d, path)?;
    // Leading axes over the pages: as tifffile wrote them (its JSON description of a shaped
    // series), else one axis when there are several pages.
    let lead = description
        .as_deref()
        .and_then(|text| shaped_lead(text, pages, &page).or_else(|| imagej_lead(text, pages)))
        .unwrap_or_else(|| if pages > 1 { vec![pages] } else { Vec::new() });
    let mut shape = lead.clone();
    shape.extend(&page);
    let mut chunks: Vec<Vec<usize>> = lead.iter().map(|&n| vec![1; n]).collect();
    chunks.extend(page.iter().map(|&n| vec![n]));
    Ok(ArrayStructure {
        data_type: dtype,
        chunks,
        shape,
        dims: None,
        resizable: false,
    })
}

/// The axes over the pages that tifffile's description of a shaped series gives
/// (`{"shape": [2, 3, 16, 20]}` for six 16x20 pages), when they account for every page.
fn shaped_lead(description: &str, pages: usize, page: &[usize]) -> Option<Vec<usize>> {
    let doc: serde_json::Value = serde_json::from_str(description.trim()).ok()?;
    let shape: Vec<usize> = doc
        .get("shape")?
        .as_array()?
        .iter()
        .map(|v| v.as_u64().and_then(|n| usize::try_from(n).ok()))
        .collect::<Option<_>>()?;
    let lead = shape.strip_suffix(page)?;
    // A description of (1, h, w) for one page keeps its axis of length 1, as imread does.
    (lead.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) == Some(pages)).then(|| lead.to_vec())
}

/// The axes over the pages of an ImageJ hyperstack (`ImageJ=...` description): frames,
/// slices and channels, those of more than one, as tifffile.imread gives them.
fn imagej_lead(description: &str, pages: usize) -> Option<Vec<usize>> {
    if !description.starts_with("ImageJ=") {
        return None;
    }
    let value = |key: &str| {
        description.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            (k.trim() == key).then(|| v.trim().parse::<usize>().ok())?
        })
    };
    let lead: Vec<usize> = ["frames", "slices", "channels"]
        .iter()
        .filter_map(|k| value(k))
        .filter(|&n| n > 1)
        .collect();
    (!lead.is_empty() && lead.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) == Some(pages))
        .then_some(lead)
}

/// The structure and data source of one TIFF or `.npy` file, or of a sequence of them
/// (`paths` in order) stacked along a new first axis.
pub fn inspect(paths: &[PathBuf], npy: bool) -> Result<(ArrayStructure, DataSource), AdapterError> {
    let sequence = paths.len() > 1 || paths.first().is_some_and(|p| is_sequence_name(p));
    inspect_as(paths, npy, sequence)
}

/// As [`inspect`], saying whether the files are a sequence (stacked along a new first axis,
/// even when there is one file).
pub fn inspect_as(
    paths: &[PathBuf],
    npy: bool,
    sequence: bool,
) -> Result<(ArrayStructure, DataSource), AdapterError> {
    let first = paths
        .first()
        .ok_or_else(|| AdapterError::BadSource("no files".into()))?;
    if paths.len() > 1 && !sequence {
        return Err(AdapterError::BadSource(format!(
            "{} files given for one image; a sequence's mimetype is multipart/related",
            paths.len()
        )));
    }
    let one = single(first, npy)?;
    let (structure, mimetype) = if sequence {
        let mut shape = vec![paths.len()];
        shape.extend(&one.shape);
        let mut chunks = vec![vec![1; paths.len()]];
        if npy {
            // One block is one whole file.
            chunks.extend(one.shape.iter().map(|&n| vec![n]));
        } else {
            // One block is one page of one file.
            chunks.extend(one.chunks.iter().cloned());
        }
        let s = ArrayStructure {
            data_type: one.data_type,
            chunks,
            shape,
            dims: None,
            resizable: false,
        };
        (
            s,
            if npy {
                NPY_SEQUENCE_MIMETYPE
            } else {
                TIFF_SEQUENCE_MIMETYPE
            },
        )
    } else {
        (one, if npy { NPY_MIMETYPE } else { TIFF_MIMETYPE })
    };
    let uris = paths.iter().map(|p| super::file_uri(p));
    let source =
        super::external_source(StructureFamily::Array, mimetype, Map::new(), uris, sequence);
    Ok((structure, source))
}

/// Whether a file name is part of a numbered sequence (`<stem><digits>.<ext>`).
pub fn is_sequence_name(path: &Path) -> bool {
    sequence_stem(path).is_some()
}

/// The stem of a numbered file (`img_007.tif` -> `img_`; `_unnamed` for `007.tif`).
pub fn sequence_stem(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let (base, ext) = name.rsplit_once('.')?;
    if !matches!(ext.to_ascii_lowercase().as_str(), "tif" | "tiff" | "npy") {
        return None;
    }
    let digits = base.len() - base.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return None;
    }
    let stem = &base[..base.len() - digits];
    Some(if stem.is_empty() {
        "_unnamed".to_string()
    } else {
        stem.to_string()
    })
}

// ---------------------------------------------------------------------------------------------
// Reading

struct ImageReader {
    kind: Kind2,
    files: Vec<PathBuf>,
    structure: ArrayStructure,
    grid: ChunkGrid,
    /// For a single `.npy`: where its data starts.
    npy_offset: u64,
    /// For a single `.npy`: stored first axis fastest, so blocks are slabs of the last axis.
    npy_fortran: bool,
    /// For a single `.npy`: bytes per element in the file, and where the served fields sit
    /// in one when a structured type has padding.
    npy_stored: (usize, Option<Vec<(usize, usize)>>),
}

impl ImageReader {
    fn check(
        &self,
        path: &Path,
        shape: &[usize],
        dtype: &DataType,
        len: usize,
    ) -> Result<(), AdapterError> {
        let want: usize = shape.iter().product::<usize>() * self.structure.data_type.itemsize();
        if dtype.itemsize() != self.structure.data_type.itemsize() || len != want {
            return Err(bad(
                path,
                "its pixels differ in size or type from the other files of the array",
            ));
        }
        Ok(())
    }
}

impl ArrayReader for ImageReader {
    fn read_block(&self, block: &[usize]) -> Result<ArrayData, AdapterError> {
        let (start, shape) = super::block_region(&self.grid, block)?;
        let mut bytes = match self.kind {
            Kind2::Tiff => {
                let path = &self.files[0];
                let mut d = tiff_decoder(path)?;
                // One block is one page: the leading axes count pages in C order, and the
                // page's own axes have one block each.
                let page = block
                    .iter()
                    .zip(&self.structure.chunks)
                    .fold(0usize, |p, (&b, c)| p * c.len() + b);
                d.seek_to_image(page)
                    .map_err(|e| bad(path, format!("page {page} cannot be read ({e})")))?;
                let (_, dtype, bytes) = tiff_page(&mut d, path)?;
                self.check(path, &shape, &dtype, bytes.len())?;
                bytes
            }
            Kind2::TiffSequence => {
                let path = &self.files[start[0]];
                let mut d = tiff_decoder(path)?;
                // After the axis over the files come the file's own axes over its pages.
                let page = block
                    .iter()
                    .zip(&self.structure.chunks)
                    .skip(1)
                    .fold(0usize, |p, (&b, c)| p * c.len() + b);
                d.seek_to_image(page)
                    .map_err(|e| bad(path, format!("page {page} cannot be read ({e})")))?;
                let (_, dtype, bytes) = tiff_page(&mut d, path)?;
                self.check(path, &shape, &dtype, bytes.len())?;
                bytes
            }
            Kind2::Npy => {
                let path = &self.files[0];
                let (itemsize, fields_at) = &self.npy_stored;
                let itemsize = *itemsize;
                let axis = if self.npy_fortran {
                    shape.len().saturating_sub(1)
                } else {
                    0
                };
                // A slab along the block axis is contiguous in the file: the other axes are whole.
                let slab: usize = self
                    .structure
                    .shape
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != axis)
                    .map(|(_, &n)| n)
                    .product::<usize>()
                    * itemsize;
                let first = start.get(axis).copied().unwrap_or(0);
                let len = shape.iter().product::<usize>() * itemsize;
                let bytes = read_npy_range(path, self.npy_offset + (first * slab) as u64, len)?;
                // Bytes keep the byte order the header declares (the served type says it);
                // only Fortran-ordered elements are moved, into C order.
                let mut bytes = if self.npy_fortran {
                    npy_header::fortran_to_c(&bytes, &shape, itemsize)
                } else {
                    bytes
                };
                if let Some(at) = fields_at {
                    bytes = npy_header::pack(&bytes, itemsize, at);
                }
                return Ok(ArrayData::new(
                    self.structure.data_type.clone(),
                    shape,
                    bytes,
                ));
            }
            Kind2::NpySequence => {
                let path = &self.files[start[0]];
                let h = npy_header(path)?;
                let len = shape.iter().product::<usize>() * h.stored_itemsize;
                if h.dtype != self.structure.data_type || h.shape[..] != shape[1..] {
                    return Err(bad(
                        path,
                        "its shape or type differs from the other files of the array",
                    ));
                }
                let mut bytes = read_npy_range(path, h.offset, len)?;
                if h.fortran_order {
                    bytes = npy_header::fortran_to_c(&bytes, &h.shape, h.stored_itemsize);
                }
                if let Some(at) = &h.fields_at {
                    bytes = npy_header::pack(&bytes, h.stored_itemsize, at);
                }
                return Ok(ArrayData::new(
                    self.structure.data_type.clone(),
                    shape,
                    bytes,
                ));
            }
        };
        // TIFF pixels come in this machine's order; serve them in the declared one.
        super::to_declared_order(&self.structure.data_type, &mut bytes);
        Ok(ArrayData::new(
            self.structure.data_type.clone(),
            shape,
            bytes,
        ))
    }
}

/// Opens a TIFF, TIFF sequence, `.npy` or `.npy` sequence data source.
pub fn open(source: &DataSource) -> Result<Adapter, AdapterError> {
    let kind = kind_of(&source.mimetype)
        .ok_or_else(|| AdapterError::UnknownMimetype(source.mimetype.clone()))?;
    let files = super::asset_files(source)?;
    let structure: ArrayStructure = match super::structure_of(source) {
        Ok(s) => s,
        Err(_) => inspect(&files, matches!(kind, Kind2::Npy | Kind2::NpySequence))?.0,
    };
    let (npy_offset, npy_fortran, npy_stored) = if kind == Kind2::Npy {
        let h = npy_header(&files[0])?;
        if h.shape != structure.shape || h.dtype.itemsize() != structure.data_type.itemsize() {
            return Err(bad(&files[0], "its shape or type differs from the node's"));
        }
        let axis = npy_block_axis(&h);
        if structure
            .chunks
            .iter()
            .zip(&structure.shape)
            .enumerate()
            .any(|(i, (c, &n))| i != axis && (c.len() != 1 || c[0] != n))
        {
            return Err(bad(
                &files[0],
                if h.fortran_order {
                    "a Fortran-order .npy array is read in blocks along its last axis only"
                } else {
                    "a .npy array is read in blocks of whole rows only"
                },
            ));
        }
        (h.offset, h.fortran_order, (h.stored_itemsize, h.fields_at))
    } else {
        (0, false, (0, None))
    };
    let grid = ChunkGrid::new(&structure.shape, structure.chunks.clone())
        .map_err(|e| AdapterError::BadSource(e.to_string()))?;
    Ok(Adapter::Array(Arc::new(ImageReader {
        kind,
        files,
        structure,
        grid,
        npy_offset,
        npy_fortran,
        npy_stored,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagej_hyperstacks_give_their_axes() {
        let d = "ImageJ=1.11a\nimages=24\nchannels=4\nslices=3\nframes=2\nhyperstack=true";
        assert_eq!(imagej_lead(d, 24), Some(vec![2, 3, 4]));
        assert_eq!(imagej_lead(d, 23), None, "the pages must all be there");
        let d = "ImageJ=1.11a\nimages=6\nchannels=2\nslices=1\nframes=3";
        assert_eq!(imagej_lead(d, 6), Some(vec![3, 2]));
        assert_eq!(imagej_lead("{\"shape\": [2, 3]}", 6), None);
    }

    #[test]
    fn sequence_stems_follow_tiled() {
        let stem = |s: &str| sequence_stem(Path::new(s));
        assert_eq!(stem("/d/img_007.tif").as_deref(), Some("img_"));
        assert_eq!(stem("/d/007.tiff").as_deref(), Some("_unnamed"));
        assert_eq!(stem("/d/python3.npy").as_deref(), Some("python"));
        assert_eq!(stem("/d/image.tif"), None);
        assert_eq!(stem("/d/scan7.h5"), None);
    }

    /// A version 1.0 `.npy` file with `header` and `data`.
    fn npy_file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.as_bytes().to_vec();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(b' ');
        }
        h.push(b'\n');
        let mut file = b"\x93NUMPY\x01\x00".to_vec();
        file.extend((h.len() as u16).to_le_bytes());
        file.extend(&h);
        file.extend(data);
        file
    }

    #[test]
    fn zero_d_and_oversized_npy_files() {
        let dir = std::env::temp_dir().join(format!("tessera-npy0-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.npy");
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (), }";
        std::fs::write(&path, npy_file(header, &2.5f64.to_le_bytes())).unwrap();
        let (s, source) = inspect(std::slice::from_ref(&path), true).unwrap();
        let Adapter::Array(r) = open(&super::super::with_structure(&source, &s)).unwrap() else {
            panic!("an array reader");
        };
        assert_eq!(&r.read_block(&[]).unwrap().bytes[..], 2.5f64.to_le_bytes());

        let huge = "{'descr': '|u1', 'fortran_order': False, 'shape': (18446744073709551615,), }";
        std::fs::write(&path, npy_file(huge, &[0; 8])).unwrap();
        let err = npy_header(&path).unwrap_err().to_string();
        assert!(err.contains("too large"), "{err}");

        // An empty array is one block however long its first axis.
        let empty = "{'descr': '|u1', 'fortran_order': False, 'shape': (4611686018427387904, 0), }";
        std::fs::write(&path, npy_file(empty, &[])).unwrap();
        let (s, _) = inspect(std::slice::from_ref(&path), true).unwrap();
        assert_eq!(s.chunks, vec![vec![4611686018427387904], vec![0]]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn npy_headers_are_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("tessera-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let header = "{'descr': '<i2', 'fortran_order': False, 'shape': (3, 2), }";
        let mut h = header.as_bytes().to_vec();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(b' ');
        }
        h.push(b'\n');
        let mut file = b"\x93NUMPY\x01\x00".to_vec();
        file.extend((h.len() as u16).to_le_bytes());
        file.extend(&h);
        file.extend((0..6i16).flat_map(|v| v.to_le_bytes()));
        let path = dir.join("a.npy");
        std::fs::write(&path, &file).unwrap();
        let got = npy_header(&path).unwrap();
        assert_eq!(got.shape, vec![3, 2]);
        assert_eq!(
            got.dtype,
            DataType::Builtin(BuiltinDType::new(Kind::Int, 2))
        );
        std::fs::write(&path, &file[..file.len() - 2]).unwrap();
        assert!(
            npy_header(&path)
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
