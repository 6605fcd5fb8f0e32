//! Instances' output: split into lines ([`lines`]) and written to supervise's stdout by a
//! single writer thread ([`output`]), prefixed or as JSON (SPEC §5).

pub mod chunk;
pub mod files;
pub mod lines;
mod open_files;
pub mod output;
pub mod recent;
pub mod ring;
pub mod writer;

pub use lines::{LineSplitter, MAX_LINE};
pub use output::{Output, Stream};
