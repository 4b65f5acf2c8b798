//! The interfaces of SQLite 3.38 that hand a virtual table a whole `IN (...)` list at
//! once (`sqlite3_vtab_in`, `sqlite3_vtab_in_first`, `sqlite3_vtab_in_next`) and the value
//! of a constant operand at planning time (`sqlite3_vtab_rhs_value`).
//!
//! rusqlite 0.40 binds SQLite 3.34 (see ARCHITECTURE.md for why that version), whose
//! API table ends before them, so they are read here from the API table SQLite passes
//! to the extension's entry point, and only when the running SQLite is 3.38 or later
//! (before that the table is shorter and these fields do not exist). On an older SQLite
//! [`api`] is None: `recommend()` and `similar_items()` then leave `item_id IN (...)` to
//! SQLite, which filters the ranked rows.

use std::ffi::c_int;
use std::sync::atomic::{AtomicPtr, Ordering};

use rusqlite::ffi;

/// The first SQLite whose API table has these entries.
const SINCE: c_int = 3_038_000;

type VtabIn = unsafe extern "C" fn(*mut ffi::sqlite3_index_info, c_int, c_int) -> c_int;
type VtabInStep =
    unsafe extern "C" fn(*mut ffi::sqlite3_value, *mut *mut ffi::sqlite3_value) -> c_int;
type VtabRhsValue = unsafe extern "C" fn(
    *mut ffi::sqlite3_index_info,
    c_int,
    *mut *mut ffi::sqlite3_value,
) -> c_int;
type Opaque = Option<unsafe extern "C" fn()>;

/// Entries of SQLite 3.34's API table (`sqlite3ext.h`), the one rusqlite's loadable
/// bindings describe; and the place of `libversion_number` in it.
const ENTRIES_334: usize = 253;
const LIBVERSION_NUMBER: usize = 67;

/// `sqlite3_api_routines` of SQLite 3.38 up to `vtab_in_next`: the 3.34 table, then the
/// entries added by 3.36.1 (`changes64`, `total_changes64`), 3.37 (`autovacuum_pages`)
/// and 3.38, in the order of SQLite's `sqlite3ext.h`. Every entry is a function pointer
/// (same size and alignment), so this prefix has the layout of the real table. It is
/// spelt out by count rather than with rusqlite's struct, which is opaque when foryou is
/// linked into an application (feature `loadable` off).
#[repr(C)]
struct Routines338 {
    base: [Opaque; ENTRIES_334],
    changes64: Opaque,
    total_changes64: Opaque,
    autovacuum_pages: Opaque,
    error_offset: Opaque,
    vtab_rhs_value: Option<VtabRhsValue>,
    vtab_distinct: Opaque,
    vtab_in: Option<VtabIn>,
    vtab_in_first: Option<VtabInStep>,
    vtab_in_next: Option<VtabInStep>,
}

// The counts above are those of the table rusqlite's loadable bindings (SQLite 3.34) lay out.
#[cfg(feature = "loadable")]
const _: () = {
    let entry = std::mem::size_of::<Opaque>();
    assert!(std::mem::size_of::<ffi::sqlite3_api_routines>() == ENTRIES_334 * entry);
    assert!(
        std::mem::offset_of!(ffi::sqlite3_api_routines, libversion_number)
            == LIBVERSION_NUMBER * entry
    );
};

/// The entries, once read from a 3.38+ API table.
#[derive(Clone, Copy)]
pub struct InApi {
    vtab_in: VtabIn,
    first: VtabInStep,
    next: VtabInStep,
    rhs_value: VtabRhsValue,
}

/// Set by [`load`]; null on SQLite before 3.38. A process has one SQLite API table
/// per SQLite library, and every connection loading us passes its library's table.
static API: AtomicPtr<InApi> = AtomicPtr::new(std::ptr::null_mut());

/// Reads the entries from the API table of the SQLite that is loading the extension.
///
/// # Safety
/// `p_api` is the API table pointer SQLite passed to the extension's entry point.
pub unsafe fn load(p_api: *const ffi::sqlite3_api_routines) {
    if p_api.is_null() {
        return;
    }
    // SAFETY: `p_api` points to SQLite's API table (see # Safety), an array of function
    // pointers; `libversion_number` has been its entry LIBVERSION_NUMBER since the table
    // was introduced (SQLite 3.3.13), so the read is inside it.
    let entry = unsafe { p_api.cast::<Opaque>().add(LIBVERSION_NUMBER).read() };
    let Some(entry) = entry else {
        return;
    };
    // SAFETY: that entry is `int (*)(void)`; a function pointer cast to the signature
    // of the function it points to.
    let version = unsafe {
        std::mem::transmute::<unsafe extern "C" fn(), unsafe extern "C" fn() -> c_int>(entry)
    };
    // SAFETY: `sqlite3_libversion_number`, called as SQLite documents it (no arguments).
    if unsafe { version() } < SINCE {
        return;
    }
    // SAFETY: the running SQLite is 3.38 or later, so its API table extends at least to
    // `vtab_in_next`, with the layout of `Routines338` (see there); the table is static
    // data of the SQLite library and is only read.
    let table = unsafe { &*p_api.cast::<Routines338>() };
    let (Some(vtab_in), Some(first), Some(next), Some(rhs_value)) = (
        table.vtab_in,
        table.vtab_in_first,
        table.vtab_in_next,
        table.vtab_rhs_value,
    ) else {
        return;
    };
    let loaded = Box::new(InApi {
        vtab_in,
        first,
        next,
        rhs_value,
    });
    // Leaked on purpose, and so is a box an earlier load stored: a few pointers per
    // load, which another thread may be reading.
    API.store(Box::into_raw(loaded), Ordering::Release);
}

/// The entries, when the running SQLite has them.
pub fn api() -> Option<InApi> {
    let p = API.load(Ordering::Acquire);
    // SAFETY: non-null only once `load` stored a leaked box, never freed or written again.
    (!p.is_null()).then(|| unsafe { *p })
}

impl InApi {
    /// Whether constraint `i` of `info` is an `IN (...)` operator (`sqlite3_vtab_in(P, i, -1)`).
    ///
    /// # Safety
    /// `info` is the index info of the running `xBestIndex`, and `i` one of its constraints.
    pub unsafe fn is_in(self, info: *mut ffi::sqlite3_index_info, i: c_int) -> bool {
        // SAFETY: see # Safety; a 3.38 entry, called with its documented arguments.
        unsafe { (self.vtab_in)(info, i, -1) != 0 }
    }

    /// Asks for constraint `i`'s whole list at once in `xFilter`; whether SQLite agreed.
    ///
    /// # Safety
    /// As [`InApi::is_in`].
    pub unsafe fn take_whole_list(self, info: *mut ffi::sqlite3_index_info, i: c_int) -> bool {
        // SAFETY: see # Safety.
        unsafe { (self.vtab_in)(info, i, 1) != 0 }
    }

    /// Whether the right-hand operand of constraint `i` is a value known while planning
    /// (a literal), as opposed to a column of another table or a parameter.
    ///
    /// # Safety
    /// As [`InApi::is_in`].
    pub unsafe fn has_known_value(self, info: *mut ffi::sqlite3_index_info, i: c_int) -> bool {
        let mut value: *mut ffi::sqlite3_value = std::ptr::null_mut();
        // SAFETY: see # Safety; `value` is a valid out-pointer.
        unsafe { (self.rhs_value)(info, i, &raw mut value) == ffi::SQLITE_OK && !value.is_null() }
    }

    /// Calls `each` with every value of an all-at-once `IN` list.
    ///
    /// # Safety
    /// `list` is the `xFilter` argument of a constraint for which [`InApi::take_whole_list`]
    /// returned true, during that `xFilter` call.
    pub unsafe fn for_each(
        self,
        list: *mut ffi::sqlite3_value,
        mut each: impl FnMut(*mut ffi::sqlite3_value),
    ) -> Result<(), c_int> {
        let mut value: *mut ffi::sqlite3_value = std::ptr::null_mut();
        // SAFETY: see # Safety; `value` is a valid out-pointer, and each value SQLite
        // returns is valid until the next step.
        let mut rc = unsafe { (self.first)(list, &raw mut value) };
        while rc == ffi::SQLITE_OK && !value.is_null() {
            each(value);
            // SAFETY: as above.
            rc = unsafe { (self.next)(list, &raw mut value) };
        }
        if rc == ffi::SQLITE_OK || rc == ffi::SQLITE_DONE {
            Ok(())
        } else {
            Err(rc)
        }
    }
}
