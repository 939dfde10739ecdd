(* NBDKit: the module an OCaml plugin script sees.

   A script is compiled by the host (nbdkit ocaml SCRIPT.ml, or
   nbdkit SCRIPT.ml) and linked into the server, where its top level
   runs once.  There it declares its parameters with [param] and calls
   [register_plugin] once with its callbacks.  See README.md in
   langs/ocaml for a whole example. *)

(** {1 Errors} *)

exception Error of Unix.error * string
(** Raise [Error (Unix.ENOSPC, "disk full")] from a callback to fail it:
    the message is logged and the client gets that errno.  [Unix.EUNKNOWNERR n]
    gives errno [n].  [Unix.Unix_error] is mapped the same way; any other
    exception is logged with [Printexc.to_string] and its backtrace
    (recorded by default), and the client gets EIO, or the errno given
    to [set_error]. *)

(** {1 Request flags and capability answers} *)

type flag = May_trim | FUA | Req_one | Fast_zero
type flags = flag list

type thread_model =
  | Serialize_connections
  | Serialize_all_requests  (** the default for OCaml scripts *)
  | Serialize_requests
  | Serialize_retirement
  | Parallel

type fua_mode = Fua_none | Fua_emulate | Fua_native
type zero_mode = Zero_none | Zero_emulate | Zero_native
type cache_mode = Cache_none | Cache_emulate | Cache_native
type extents_mode = Extents_none | Extents_emulate | Extents_native

type extent = {
  offset : int64;
  length : int64;
  is_hole : bool;  (** unallocated *)
  is_zero : bool;  (** reads as zeroes *)
}

type export = { name : string; description : string option }

type block_size = {
  minimum : int;           (** power of 2, 1 .. 64K; 0: no constraint *)
  preferred : int;         (** power of 2, 512 .. 32M *)
  maximum : int;           (** largest read or write *)
  maximum_virtual : int64; (** largest trim, zero, cache *)
}

(** {1 Typed parameters}

    Declared at the top level of the script, before or after
    [register_plugin].  The server checks every key=value against the
    declarations (refusing unknown keys, bad values and missing
    required keys, naming the key), lists them in [--help], and the
    script reads the converted values with [get]. *)

type _ kind =
  | String : string kind
  | Bool : bool kind        (** 1/0, true/false, yes/no, on/off *)
  | Int : int64 kind        (** decimal, 0x hex, 0 octal *)
  | Size : int64 kind       (** 512, 4k, 1G, ... *)
  | Enum : string list -> string kind  (** one of the choices *)
  | File : string kind      (** an existing file, made absolute *)
  | Directory : string kind (** an existing directory, made absolute *)
  | Password : string kind  (** the text, "-" (ask), "-FD" or "+FILE" *)
  | List : string list kind (** may be given many times *)

type 'a param

val param :
  ?required:bool -> ?default:'a -> ?doc:string -> string -> 'a kind -> 'a param
(** [param ~doc:"size of the disk" ~required:true "size" Size].  A
    [List] takes no default. *)

val get : 'a param -> 'a
(** The value given (the last one, for a key given twice), else the
    default.  A [List] parameter gives all its values, in order ([[]]
    if none).  Raises [Invalid_argument] for an optional parameter
    without default that was not given: use [get_opt] for those. *)

val get_opt : 'a param -> 'a option

(** {1 Registering the plugin} *)

type buf = (char, Bigarray.int8_unsigned_elt, Bigarray.c_layout) Bigarray.Array1.t
(** The buffer [pread_buf] fills: the server's own memory, without a
    copy.  Valid only until the callback returns. *)

val register_plugin :
  name:string ->
  ?longname:string ->
  ?version:string ->
  ?description:string ->
  ?config_help:string ->
  ?unload:(unit -> unit) ->
  ?config:(string -> string -> unit) ->
  ?config_complete:(unit -> unit) ->
  ?dump_plugin:(unit -> unit) ->
  ?thread_model:(unit -> thread_model) ->
  ?get_ready:(thread_model -> unit) ->
  ?after_fork:(unit -> unit) ->
  ?cleanup:(unit -> unit) ->
  ?preconnect:(bool -> unit) ->
  ?list_exports:(bool -> bool -> export list) ->
  ?default_export:(bool -> bool -> string) ->
  ?magic_config_key:string ->
  open_connection:(bool -> string -> bool -> 'a) ->
  ?close:('a -> unit) ->
  get_size:('a -> int64) ->
  ?export_description:('a -> string) ->
  ?block_size:('a -> bool -> block_size) ->
  ?can_write:('a -> bool) ->
  ?can_flush:('a -> bool) ->
  ?is_rotational:('a -> bool) ->
  ?can_trim:('a -> bool) ->
  ?can_zero:('a -> zero_mode) ->
  ?can_fast_zero:('a -> bool) ->
  ?can_fua:('a -> fua_mode) ->
  ?can_multi_conn:('a -> bool) ->
  ?can_extents:('a -> extents_mode) ->
  ?can_cache:('a -> cache_mode) ->
  ?pread:('a -> bytes -> int64 -> flags -> unit) ->
  ?pread_buf:('a -> buf -> int64 -> flags -> unit) ->
  ?pwrite:('a -> string -> int64 -> flags -> unit) ->
  ?flush:('a -> flags -> unit) ->
  ?trim:('a -> int64 -> int64 -> flags -> unit) ->
  ?zero:('a -> int64 -> int64 -> flags -> unit) ->
  ?extents:('a -> int64 -> int64 -> flags -> extent list) ->
  ?cache:('a -> int64 -> int64 -> flags -> unit) ->
  unit -> unit
(** Call once, at the top level of the script.  [open_connection
    readonly exportname is_tls] returns the connection's handle, which
    every per-connection callback receives.  [pread h buf offset flags]
    fills all of [buf] (its length is the request's count) from disk
    offset [offset] (a fresh buffer, copied to the server afterwards);
    [pread_buf] instead fills the server's buffer itself, a Bigarray
    ([Bigarray.Array1.dim buf] is the count); give one of the two.
    Both may answer parts of the request with [read_hole],
    [read_lend] and [read_error_at].
    [pwrite h data offset flags] writes [data].
    [trim], [zero] and [cache] take the count, then the offset.
    [config key value] sees each key=value (its canonical form: sizes
    and ints as decimal digits, bools as "1"/"0", paths absolute) after
    the value is stored for [get]; a script that declares no parameter
    gets every key there unchecked.  A callback left out is not
    offered to the server, which answers as for a C plugin without it
    (e.g. no [pwrite]: the export is read-only).  [magic_config_key]
    names the key a bare value on the command line is given to
    ([nbdkit ocaml plugin.ml 1G] with ["size"]: size=1G). *)

(** {1 Reads beyond plain data}

    Called from a plugin's [pread] or [pread_buf] (else they raise
    [Error (EINVAL, _)]).  Offsets are disk offsets inside the
    request. *)

val read_hole : int64 -> int64 -> unit
(** [read_hole offset length]: that range reads as zeroes and need not
    be filled; with structured replies the client gets a hole. *)

val read_lend : int64 -> buf -> unit
(** [read_lend offset data]: the bytes at [offset] are [data] (all of
    it), sent from there without a copy into the request's buffer.
    Leave [data] unchanged until the request's reply is sent; the
    server keeps it alive until then. *)

val read_error_at : int64 -> unit
(** [read_error_at offset] and then raise: the bytes before [offset]
    are valid and reach the client before the error (a partial read). *)

(** {1 Filters}

    A filter script ([nbdkit --filter=./f.ml PLUGIN]) calls
    [register_filter] instead of [register_plugin].  Its callbacks get
    [next], the layer below for this connection, first; the functions
    of [Next] call that layer (valid only during the callback).  A
    callback left out passes the call through unchanged.  Plugin and
    filters written in OCaml run in one runtime. *)

type next

module Next : sig
  val get_size : next -> int64
  val export_description : next -> string option
  val block_size : next -> block_size
  val can_write : next -> bool
  val can_flush : next -> bool
  val is_rotational : next -> bool
  val can_trim : next -> bool
  val can_zero : next -> zero_mode
  val can_fast_zero : next -> bool
  val can_fua : next -> fua_mode
  val can_multi_conn : next -> bool
  val can_extents : next -> extents_mode
  val can_cache : next -> cache_mode
  val pread : next -> bytes -> int64 -> flags -> unit
  (** [pread next buf offset flags] fills all of [buf]. *)
  val pread_request : next -> flags -> unit
  (** From the filter's [pread]: answer the whole request from the
      layer below, unchanged and unseen (the [buf] the filter got is
      then ignored).  Holes and lent memory of the layer below reach
      the client as they are, without copies.  Once per [pread]. *)
  val pwrite : next -> string -> int64 -> flags -> unit
  val flush : next -> flags -> unit
  val trim : next -> int64 -> int64 -> flags -> unit
  (** [trim next count offset flags]; the same for [zero], [cache]. *)
  val zero : next -> int64 -> int64 -> flags -> unit
  val cache : next -> int64 -> int64 -> flags -> unit
  val extents : next -> int64 -> int64 -> flags -> extent list
end
(** A failure below raises [Error (errno, _)] (already logged). *)

val register_filter :
  name:string ->
  ?longname:string ->
  ?version:string ->
  ?description:string ->
  ?config_help:string ->
  ?unload:(unit -> unit) ->
  ?config:(string -> string -> unit) ->
  ?config_complete:(unit -> unit) ->
  ?dump_plugin:(unit -> unit) ->
  ?thread_model:(unit -> thread_model) ->
  ?get_ready:(thread_model -> unit) ->
  ?after_fork:(unit -> unit) ->
  ?cleanup:(unit -> unit) ->
  ?preconnect:(bool -> unit) ->
  ?list_exports:(bool -> bool -> export list) ->
  ?default_export:(bool -> bool -> string) ->
  open_connection:(bool -> string -> bool -> 'a) ->
  ?close:('a -> unit) ->
  ?prepare:(next -> 'a -> bool -> unit) ->
  ?finalize:(next -> 'a -> unit) ->
  ?get_size:(next -> 'a -> int64) ->
  ?export_description:(next -> 'a -> string) ->
  ?block_size:(next -> 'a -> bool -> block_size) ->
  ?can_write:(next -> 'a -> bool) ->
  ?can_flush:(next -> 'a -> bool) ->
  ?is_rotational:(next -> 'a -> bool) ->
  ?can_trim:(next -> 'a -> bool) ->
  ?can_zero:(next -> 'a -> zero_mode) ->
  ?can_fast_zero:(next -> 'a -> bool) ->
  ?can_fua:(next -> 'a -> fua_mode) ->
  ?can_multi_conn:(next -> 'a -> bool) ->
  ?can_extents:(next -> 'a -> extents_mode) ->
  ?can_cache:(next -> 'a -> cache_mode) ->
  ?pread:(next -> 'a -> bytes -> int64 -> flags -> unit) ->
  ?pwrite:(next -> 'a -> string -> int64 -> flags -> unit) ->
  ?flush:(next -> 'a -> flags -> unit) ->
  ?trim:(next -> 'a -> int64 -> int64 -> flags -> unit) ->
  ?zero:(next -> 'a -> int64 -> int64 -> flags -> unit) ->
  ?extents:(next -> 'a -> int64 -> int64 -> flags -> extent list) ->
  ?cache:(next -> 'a -> int64 -> int64 -> flags -> unit) ->
  unit -> unit
(** [open_connection readonly exportname is_tls] makes the filter's
    handle (the layer below is opened with the same arguments).
    [pread next h buf offset flags] fills all of [buf], usually with
    [Next.pread next buf offset flags] and a change.  Parameters are
    declared with [param] as for plugins; only those keys reach the
    filter.  [preconnect readonly] may refuse a client by raising
    (the server asks every layer itself).  [list_exports readonly
    is_tls] and [default_export] answer for the layers below, which
    [list_exports_below] and [default_export_below] ask.  [prepare next
    h readonly] runs once every layer is open, [finalize] before any
    closes. *)

val next_open : bool -> string -> unit
(** [next_open readonly exportname], from a filter's
    [open_connection]: open the layer below now, with these arguments
    (else it is opened with the client's). *)

val next_context_open : bool -> string -> next
(** [next_context_open readonly exportname]: a context of the filter's
    own on the layer below, independent of any client (e.g. one shared
    by every connection).  Call it from a callback of the filter once
    a client has connected (from [open_connection] on).  The [next]
    works with every [Next] function, from any callback or thread of
    the script, until [next_context_close]. *)

val next_context_close : next -> unit

val list_exports_below : bool -> bool -> export list
val default_export_below : bool -> bool -> string
(** From a filter's [list_exports] or [default_export]: the answer of
    the layers below. *)

(** {1 Functions of the server} *)

val debug : ('a, unit, string, unit) format4 -> 'a
(** Printf-like; printed with [nbdkit -v] only. *)

val error : ('a, unit, string, unit) format4 -> 'a
(** Log an error now (a raised exception is logged anyway). *)

val set_error : Unix.error -> unit
(** The errno the client gets if the current callback fails with an
    exception other than [Error]. *)

val export_name : unit -> string
(** The export name the client asked for (in a connection). *)

val is_tls : unit -> bool
val peer_pid : unit -> int64
val peer_uid : unit -> int64
val peer_gid : unit -> int64
(** Unix sockets only; raise [Error] otherwise. *)

val parse_size : string -> int64
(** "1G" -> 1073741824L; raises [Error (EINVAL, _)] on bad input. *)

val parse_bool : string -> bool
val parse_probability : string -> string -> float
(** [parse_probability what "10%"]. *)

val read_password : string -> string
(** As the [Password] parameter type: text, "-", "-FD", "+FILE". *)

val realpath : string -> string
val absolute_path : string -> string

val parse_int : string -> string -> int64
(** [parse_int what s]: a signed 64-bit integer (decimal, 0x hex, 0
    octal); raises [Error (EINVAL, _)] after logging why, naming [what]. *)

val peer_name : unit -> Unix.sockaddr
(** The client's address. *)

val nanosleep : int -> int -> unit
(** [nanosleep sec nsec]; raises [Error (ESHUTDOWN, _)] if the server
    is shutting down, [Invalid_argument] unless 0 <= [sec] < 2^32 and
    0 <= [nsec] < 10^9.  Other callbacks may run while it sleeps. *)

val shutdown : unit -> unit
(** Ask the server to exit, as on SIGTERM. *)

val disconnect : bool -> unit
(** Drop the current client: at once with [true], after its requests
    in flight with [false]. *)

val stdio_safe : unit -> bool
(** Whether stdin/stdout are free for the script (not with -s). *)

val version : string
(** The server's version. *)

val abi : string -> int
(** A number of the C ABI by its name without NBDKIT_, as the host was
    compiled: [abi "FLAG_FUA"], [abi "THREAD_MODEL_PARALLEL"]. *)
