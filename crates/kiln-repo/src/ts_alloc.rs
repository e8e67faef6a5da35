//! tree-sitter's C library allocates through mimalloc instead of libc malloc.
//!
//! Why: a parse allocates and frees one small node per token (`ts_subtree_new_leaf`,
//! `ts_subtree_release`), and glibc's malloc/free were ~15% of a corpus build with the quality
//! screen; with mimalloc the same build ran ~12% faster (measured by preloading it; now linked).
//! Only tree-sitter's allocations move: Rust's global allocator stays glibc's, tuned for the
//! trainer's large buffers in kiln-cli.

use std::ffi::c_void;
use std::sync::Once;

use libmimalloc_sys::{mi_free, mi_malloc, mi_realloc, mi_zalloc};

static INSTALL: Once = Once::new();

/// Installs the allocator, once per process, before the first parser is made.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        let allocator = tree_sitter::Allocator { malloc: ts_malloc, calloc: ts_calloc, realloc: ts_realloc, free: ts_free };
        // SAFETY: the four functions are one allocator family (mimalloc), never return null
        // for a non-zero size (they abort, as tree-sitter's own defaults do), and align as
        // malloc does; `Once` runs this exactly once, before this crate creates any
        // tree-sitter object (every parser is made in `with_parser`, after `install`).
        unsafe { tree_sitter::set_allocator(Some(allocator)) };
    });
}

fn non_null(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() && size != 0 {
        // tree-sitter cannot recover from a failed allocation; neither can its default.
        std::process::abort();
    }
    p
}

unsafe extern "C" fn ts_malloc(size: usize) -> *mut c_void {
    // SAFETY: plain allocation.
    non_null(unsafe { mi_malloc(size) }, size)
}

unsafe extern "C" fn ts_calloc(count: usize, size: usize) -> *mut c_void {
    let Some(total) = count.checked_mul(size) else { std::process::abort() };
    // SAFETY: plain zeroed allocation of `total` bytes.
    non_null(unsafe { mi_zalloc(total) }, total)
}

unsafe extern "C" fn ts_realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: `ptr` is null or came from this family (tree-sitter frees what it allocates).
    non_null(unsafe { mi_realloc(ptr, size) }, size)
}

unsafe extern "C" fn ts_free(ptr: *mut c_void) {
    // SAFETY: as above.
    unsafe { mi_free(ptr) }
}
