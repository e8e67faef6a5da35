//! tree-sitter's C library allocates through mimalloc instead of libc malloc.
//!
//! Why: a parse allocates and frees one small node per token (`ts_subtree_new_leaf`,
//! `ts_subtree_release`), and glibc's malloc/free were ~15% of a corpus build with the quality
//! screen; with mimalloc the same build ran ~12% faster (measured by preloading it; now linked).
//! Only tree-sitter's allocations move: Rust's global allocator stays glibc's, tuned for the
//! trainer's large buffers in kiln-cli. [`in_scratch_heap`] puts a parse in a heap of its own
//! that is thrown away whole.

use std::cell::Cell;
use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::Once;

use libmimalloc_sys::{
    mi_free, mi_heap_destroy, mi_heap_malloc, mi_heap_new, mi_heap_realloc, mi_heap_t, mi_heap_zalloc, mi_malloc, mi_realloc, mi_zalloc,
};

thread_local! {
    /// This thread's scratch heap while [`in_scratch_heap`] runs, else null.
    static SCRATCH: Cell<*mut mi_heap_t> = const { Cell::new(null_mut()) };
}

fn scratch() -> *mut mi_heap_t {
    // `try_with`: tree-sitter objects cached in other thread-locals may be freed while this
    // thread's locals are torn down.
    SCRATCH.try_with(|h| h.get()).unwrap_or(null_mut())
}

/// Runs `f` with this thread's tree-sitter allocations in a fresh mimalloc heap that is
/// destroyed, with every block still in it, when `f` returns (or panics).
///
/// Why: dropping a tree walks and frees every node (`ts_subtree_release`, ~8% of a corpus build
/// with the quality screen); destroying the heap returns its pages in one go, and the next
/// scratch heap of the thread reuses them. Measured: a default corpus build takes 3-4% less CPU
/// over the cargo registry and the python3 stdlib (`perf stat`, 1 thread), the same corpus.
///
/// The contract, which the caller keeps: every tree-sitter object made inside `f` (parser,
/// tree, cursor) is made there and never outlives it: the caller `mem::forget`s it or drops it
/// inside `f`; no object made outside `f` (such as the cached parsers of `with_parser`) is used
/// inside it, since a realloc would move its memory into the heap about to be destroyed.
pub(crate) fn in_scratch_heap<R>(f: impl FnOnce() -> R) -> R {
    install();
    struct Destroy(*mut mi_heap_t);
    impl Drop for Destroy {
        fn drop(&mut self) {
            SCRATCH.with(|h| h.set(null_mut()));
            // SAFETY: the heap was made by this thread (heaps are thread-local and we never
            // leave it), and by the contract above nothing allocated in it is used again.
            unsafe { mi_heap_destroy(self.0) }
        }
    }
    assert!(scratch().is_null(), "scratch heaps do not nest");
    // SAFETY: a plain constructor; null only if out of memory, which mimalloc's malloc also
    // reports by returning null (checked below, as the allocator functions do).
    let heap = unsafe { mi_heap_new() };
    if heap.is_null() {
        std::process::abort();
    }
    SCRATCH.with(|h| h.set(heap));
    let _destroy = Destroy(heap);
    f()
}

static INSTALL: Once = Once::new();

/// Installs the allocator, once per process, before the first parser is made.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        let allocator = tree_sitter::Allocator { malloc: ts_malloc, calloc: ts_calloc, realloc: ts_realloc, free: ts_free };
        // SAFETY: the four functions are one allocator family (mimalloc), never return null
        // for a non-zero size (they abort, as tree-sitter's own defaults do), and align as
        // malloc does; `Once` runs this exactly once, before this crate creates any
        // tree-sitter object (every parser is made in `with_parser` or `in_scratch_heap`,
        // both after `install`).
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
    // SAFETY: plain allocation, from this thread's scratch heap while one is active.
    let h = scratch();
    non_null(
        unsafe {
            if h.is_null() {
                mi_malloc(size)
            } else {
                mi_heap_malloc(h, size)
            }
        },
        size,
    )
}

unsafe extern "C" fn ts_calloc(count: usize, size: usize) -> *mut c_void {
    let Some(total) = count.checked_mul(size) else { std::process::abort() };
    // SAFETY: plain zeroed allocation of `total` bytes (scratch heap as above).
    let h = scratch();
    non_null(
        unsafe {
            if h.is_null() {
                mi_zalloc(total)
            } else {
                mi_heap_zalloc(h, total)
            }
        },
        total,
    )
}

unsafe extern "C" fn ts_realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: `ptr` is null or came from this family (tree-sitter frees what it allocates); in
    // a scratch scope it came from the scratch heap (`in_scratch_heap`'s contract).
    let h = scratch();
    non_null(
        unsafe {
            if h.is_null() {
                mi_realloc(ptr, size)
            } else {
                mi_heap_realloc(h, ptr, size)
            }
        },
        size,
    )
}

unsafe extern "C" fn ts_free(ptr: *mut c_void) {
    // SAFETY: as above.
    unsafe { mi_free(ptr) }
}
