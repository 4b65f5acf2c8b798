//! The trampoline of the scalar functions that can fail with SQLite's own error
//! (`foryou_refit`, `foryou_evaluate`), over `sqlite3_create_function_v2`.
//!
//! rusqlite 0.40's trampoline reports an error with `sqlite3_result_error_code` and then
//! `sqlite3_result_error`, and the second call resets the code to `SQLITE_ERROR`: a
//! BUSY, READONLY, FULL or INTERRUPT reached the caller as a plain error. Here the
//! message is set first and the code after it (`sqlite3_result_error_code` keeps a
//! message already set), and SQLite's own out-of-memory error is reported with
//! `sqlite3_result_error_nomem`, as SQLite's own functions do (a refit refused for
//! memory keeps its message, with the code NOMEM). A NUL byte in a message
//! (it can echo a model name or an options key) is shown as `␀` (U+2400), as rusqlite
//! shows it in the virtual tables' messages: SQLite's messages are C strings, and
//! rusqlite's trampoline dropped a message it could not convert, leaving only
//! "constraint failed".
//!
//! The body, and everything the trampoline does, runs under `catch_unwind`: no panic
//! crosses the FFI boundary.

use std::ffi::{c_int, c_void, CStr};
use std::marker::PhantomData;
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};

use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use rusqlite::{ffi, Connection, ErrorCode};

use super::guard::panic_detail;
use crate::error::{Error, Result};

/// The arguments of one call, and its connection.
pub struct Args<'a> {
    ctx: *mut ffi::sqlite3_context,
    values: &'a [*mut ffi::sqlite3_value],
}

/// The calling connection, for the duration of one call (it does not close it).
pub struct CallConnection<'a> {
    conn: Connection,
    call: PhantomData<&'a Args<'a>>,
}

impl Deref for CallConnection<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Args<'_> {
    /// The number of arguments.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Argument `i` (NULL past the last one). Err only when SQLite ran out of memory
    /// converting it.
    pub fn get(&self, i: usize) -> Result<ValueRef<'_>> {
        let Some(&value) = self.values.get(i) else {
            return Ok(ValueRef::Null);
        };
        // SAFETY: `value` is one of the argument values SQLite passed to this call; it
        // stays valid, and unchanged, until the call returns, and the returned value
        // borrows `self`, which does not outlive the call.
        unsafe { value_ref(value) }
    }

    /// The connection the function was called on. Used only on this thread, during
    /// this call (the borrow of `self` ends with it).
    pub fn connection(&self) -> Result<CallConnection<'_>> {
        // SAFETY: `ctx` is the live context of this call; the handle it returns is the
        // calling connection, open for at least the duration of the call. The
        // `Connection` made from it does not own it (dropping it closes nothing), is
        // used only on this thread (it is neither Sync nor sent anywhere: the refit's
        // workers get owned data), and cannot outlive the call (it borrows `self`).
        let conn = unsafe { Connection::from_handle(ffi::sqlite3_context_db_handle(self.ctx))? };
        Ok(CallConnection {
            conn,
            call: PhantomData,
        })
    }
}

/// The value `value` holds, borrowing its text or blob.
///
/// # Safety
/// `value` is a valid `sqlite3_value` that stays valid and unchanged for `'a`.
pub unsafe fn value_ref<'a>(value: *mut ffi::sqlite3_value) -> Result<ValueRef<'a>> {
    // SAFETY: `value` is valid for 'a (see # Safety). The text and blob pointers are read
    // after their type is known, so SQLite converts nothing in between, and each slice
    // has the length SQLite reports for that pointer.
    unsafe {
        Ok(match ffi::sqlite3_value_type(value) {
            ffi::SQLITE_INTEGER => ValueRef::Integer(ffi::sqlite3_value_int64(value)),
            ffi::SQLITE_FLOAT => ValueRef::Real(ffi::sqlite3_value_double(value)),
            ffi::SQLITE_TEXT => {
                let text = ffi::sqlite3_value_text(value);
                let len = usize::try_from(ffi::sqlite3_value_bytes(value)).unwrap_or(0);
                if text.is_null() {
                    return Err(nomem());
                }
                ValueRef::Text(std::slice::from_raw_parts(text, len))
            }
            ffi::SQLITE_BLOB => {
                let blob = ffi::sqlite3_value_blob(value);
                let len = usize::try_from(ffi::sqlite3_value_bytes(value)).unwrap_or(0);
                match (blob.is_null(), len) {
                    (_, 0) => ValueRef::Blob(&[]),
                    (true, _) => return Err(nomem()),
                    (false, len) => {
                        ValueRef::Blob(std::slice::from_raw_parts(blob.cast::<u8>(), len))
                    }
                }
            }
            _ => ValueRef::Null,
        })
    }
}

fn nomem() -> Error {
    Error::Sqlite(rusqlite::Error::SqliteFailure(
        ffi::Error::new(ffi::SQLITE_NOMEM),
        None,
    ))
}

/// What one registration owns: the function's name (for the panic message) and body.
struct Function<F> {
    name: &'static str,
    body: F,
}

/// Registers `body` as the SQL function `name` taking `n_args` arguments (-1: any),
/// returning its TEXT or its error with SQLite's code kept.
pub fn register<F>(
    conn: &Connection,
    name: &'static CStr,
    n_args: c_int,
    flags: FunctionFlags,
    body: F,
) -> rusqlite::Result<()>
where
    F: Fn(&Args<'_>) -> Result<String> + Send + 'static,
{
    let function = Box::into_raw(Box::new(Function {
        name: name.to_str().unwrap_or("foryou"),
        body,
    }));
    // SAFETY: the handle of the connection being set up, on its own thread. `function`
    // is a valid, uniquely owned pointer whose ownership passes to SQLite here: SQLite
    // hands it back to `call::<F>` (which only reads it, as `sqlite3_user_data`, during
    // calls) and frees it once through `destroy::<F>`, when the function is replaced or
    // the connection closes, and also when this registration fails (SQLite calls
    // xDestroy then too), so it is not touched again here whatever `rc` is. `name` is a
    // NUL-terminated string, copied by SQLite.
    let rc = unsafe {
        ffi::sqlite3_create_function_v2(
            conn.handle(),
            name.as_ptr(),
            n_args,
            flags.bits(),
            function.cast::<c_void>(),
            Some(call::<F>),
            None,
            None,
            Some(destroy::<F>),
        )
    };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(
            ffi::Error::new(rc),
            Some(format!(
                "cannot register {}",
                name.to_str().unwrap_or("a function")
            )),
        ))
    }
}

/// The xFunc SQLite calls.
unsafe extern "C" fn call<F>(
    ctx: *mut ffi::sqlite3_context,
    n_values: c_int,
    values: *mut *mut ffi::sqlite3_value,
) where
    F: Fn(&Args<'_>) -> Result<String>,
{
    // Nothing after a panic reads state the panicking code left half-updated (see
    // `guard::guarded`); the result is set from the error alone.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let values: &[*mut ffi::sqlite3_value] = match usize::try_from(n_values) {
            // SAFETY: SQLite passes `n_values` valid value pointers in `values`, alive
            // for the duration of the call, which the slice does not outlive (no
            // pointer is read when there are none).
            Ok(n) if n > 0 && !values.is_null() => unsafe { std::slice::from_raw_parts(values, n) },
            _ => &[],
        };
        // SAFETY: the user data of this function is the `Function<F>` that `register`
        // boxed; SQLite keeps it alive until `destroy`, which cannot run during a call.
        let function = unsafe { &*ffi::sqlite3_user_data(ctx).cast::<Function<F>>() };
        let args = Args { ctx, values };
        let outcome = match catch_unwind(AssertUnwindSafe(|| {
            #[cfg(feature = "test-hooks")]
            crate::hooks::maybe_panic(function.name);
            (function.body)(&args)
        })) {
            Ok(outcome) => outcome,
            Err(payload) => Err(Error::Internal {
                who: function.name.to_string(),
                detail: panic_detail(payload.as_ref()),
            }),
        };
        match outcome {
            Ok(text) => set_text(ctx, &text),
            Err(error) => set_error(ctx, &error),
        }
    }));
}

fn set_text(ctx: *mut ffi::sqlite3_context, text: &str) {
    match c_int::try_from(text.len()) {
        // SAFETY: `ctx` is the live context of this call; `text` is valid for `n` bytes
        // of UTF-8, which SQLite copies (SQLITE_TRANSIENT) before returning.
        Ok(n) => unsafe {
            ffi::sqlite3_result_text(ctx, text.as_ptr().cast(), n, ffi::SQLITE_TRANSIENT());
        },
        // SAFETY: as above; sets a TOOBIG error.
        Err(_) => unsafe { ffi::sqlite3_result_error_toobig(ctx) },
    }
}

/// Reports `error`: its message, then its SQLite code when it has one (the code set
/// after the message keeps the message); SQLite's own out of memory as SQLite's NOMEM
/// (`sqlite3_result_error_nomem`: its message, like SQLite's, is "out of memory"). A
/// refit refused for memory (`Error::OutOfMemory`) keeps its message, with the code
/// NOMEM.
fn set_error(ctx: *mut ffi::sqlite3_context, error: &Error) {
    let code = error.code();
    if code.is_some_and(|c| c.code == ErrorCode::OutOfMemory)
        && !matches!(error, Error::OutOfMemory { .. })
    {
        // SAFETY: `ctx` is the live context of this call.
        unsafe { ffi::sqlite3_result_error_nomem(ctx) };
        return;
    }
    // As rusqlite shows a NUL in the messages of the virtual tables (`recommend`...).
    let message = error.to_string().replace('\0', "\u{2400}");
    // A message is far shorter than 2 GiB; a longer one would be cut, not overrun.
    let n = c_int::try_from(message.len()).unwrap_or(c_int::MAX);
    // SAFETY: `ctx` is the live context of this call; `message` is valid for `n` bytes
    // (n <= its length), which SQLite copies before returning.
    unsafe { ffi::sqlite3_result_error(ctx, message.as_ptr().cast(), n) };
    if let Some(code) = code {
        // SAFETY: as above; only the error code of the result changes.
        unsafe { ffi::sqlite3_result_error_code(ctx, code.extended_code) };
    }
}

/// The xDestroy SQLite calls once per registration.
unsafe extern "C" fn destroy<F>(function: *mut c_void) {
    // SAFETY: `function` is the pointer `register` made with `Box::into_raw` for this
    // `F`, passed back exactly once by SQLite; nothing else frees or uses it after.
    let function = unsafe { Box::from_raw(function.cast::<Function<F>>()) };
    // Dropping the body (an Arc of the connection's caches) must not unwind into C.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(function)));
}
