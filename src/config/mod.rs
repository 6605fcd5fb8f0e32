//! The ecosystem file: read, parse (TOML or YAML), validate, and report every error located.
pub mod model;
pub use model::*;
