(* NBDKit.ml: the module scripts see (NBDKit.mli documents it).

   The script's callbacks are wrapped here into functions of plain
   types (ints for handles and flags, int64 for offsets) registered
   with Callback.register under "NBDKit.<slot>.<callback>" (the slot
   of the script: 0 the plugin, 1.. the filters); plugin.c and
   filter.c look them up by name and call them under the host's lock.
   A callback the script leaves out is never registered, so the C side
   can take it out of its struct.  Every number of the C ABI (flags,
   thread models, modes, parameter types) comes from the C headers
   through [abi]. *)

exception Error of Unix.error * string

type flag = May_trim | FUA | Req_one | Fast_zero
type flags = flag list

type thread_model =
  | Serialize_connections
  | Serialize_all_requests
  | Serialize_requests
  | Serialize_retirement
  | Parallel

type fua_mode = Fua_none | Fua_emulate | Fua_native
type zero_mode = Zero_none | Zero_emulate | Zero_native
type cache_mode = Cache_none | Cache_emulate | Cache_native
type extents_mode = Extents_none | Extents_emulate | Extents_native

type extent = { offset : int64; length : int64; is_hole : bool; is_zero : bool }
type export = { name : string; description : string option }

type block_size = {
  minimum : int;
  preferred : int;
  maximum : int;
  maximum_virtual : int64;
}

(* ---- the C side (module.c) ---- *)

external c_debug : string -> unit = "ocaml_nbdkit_debug"
external c_error : string -> unit = "ocaml_nbdkit_error"
external errno_of_unix_error : Unix.error -> int
  = "ocaml_nbdkit_errno_of_unix_error"
external c_set_error : int -> unit = "ocaml_nbdkit_set_error"
external c_export_name : unit -> string option = "ocaml_nbdkit_export_name"
external c_is_tls : unit -> int = "ocaml_nbdkit_is_tls"
external c_peer : int -> int64 = "ocaml_nbdkit_peer"
external c_parse_size : string -> int64 = "ocaml_nbdkit_parse_size"
external c_parse_bool : string -> int = "ocaml_nbdkit_parse_bool"
external c_parse_probability : string -> string -> float option
  = "ocaml_nbdkit_parse_probability"
external c_read_password : string -> string option
  = "ocaml_nbdkit_read_password"
external c_realpath : string -> string option = "ocaml_nbdkit_realpath"
external c_absolute_path : string -> string option
  = "ocaml_nbdkit_absolute_path"
external c_parse_int : string -> string -> int64 option
  = "ocaml_nbdkit_parse_int"
external c_peer_name : unit -> Unix.sockaddr option = "ocaml_nbdkit_peer_name"
external c_nanosleep : int -> int -> int = "ocaml_nbdkit_nanosleep"
external shutdown : unit -> unit = "ocaml_nbdkit_shutdown"
external c_disconnect : bool -> unit = "ocaml_nbdkit_disconnect"
external c_stdio_safe : unit -> bool = "ocaml_nbdkit_stdio_safe"
external c_version : unit -> string = "ocaml_nbdkit_version"

(* The ABI's numbers (NBDKIT_FLAG_FUA, ...), from the headers the host
   was compiled with, by name without NBDKIT_. *)
external abi : string -> int = "ocaml_nbdkit_abi"

let debug fmt = Printf.ksprintf c_debug fmt
let error fmt = Printf.ksprintf c_error fmt
let set_error e = c_set_error (errno_of_unix_error e)
let version = c_version ()

let export_name () =
  match c_export_name () with
  | Some s -> s
  | None -> raise (Error (Unix.EINVAL, "export_name: not in a connection"))

let is_tls () =
  match c_is_tls () with
  | -1 -> raise (Error (Unix.EINVAL, "is_tls: not in a connection"))
  | n -> n <> 0

let peer which what () =
  let r = c_peer which in
  if r < 0L then raise (Error (Unix.EINVAL, what ^ ": not available"));
  r

let peer_pid = peer 0 "peer_pid"
let peer_uid = peer 1 "peer_uid"
let peer_gid = peer 2 "peer_gid"

let parse_size s =
  let r = c_parse_size s in
  if r < 0L then raise (Error (Unix.EINVAL, "parse_size: " ^ s));
  r

let parse_bool s =
  match c_parse_bool s with
  | -1 -> raise (Error (Unix.EINVAL, "parse_bool: " ^ s))
  | n -> n <> 0

let parse_probability what s =
  match c_parse_probability what s with
  | Some f -> f
  | None -> raise (Error (Unix.EINVAL, what ^ ": not a probability: " ^ s))

let read_password s =
  match c_read_password s with
  | Some p -> p
  | None -> raise (Error (Unix.EINVAL, "read_password failed"))

let realpath s =
  match c_realpath s with
  | Some p -> p
  | None -> raise (Error (Unix.ENOENT, "realpath: " ^ s))

let absolute_path s =
  match c_absolute_path s with
  | Some p -> p
  | None -> raise (Error (Unix.EINVAL, "absolute_path: " ^ s))

let parse_int what s =
  match c_parse_int what s with
  | Some n -> n
  | None -> raise (Error (Unix.EINVAL, what ^ ": not an integer: " ^ s))

let peer_name () =
  match c_peer_name () with
  | Some a -> a
  | None -> raise (Error (Unix.EINVAL, "peer_name: not available"))

let nanosleep sec nsec =
  (* The C side takes unsigned numbers: -1 would sleep for 136 years. *)
  if sec < 0 || sec > 0xffff_ffff || nsec < 0 || nsec >= 1_000_000_000 then
    invalid_arg "NBDKit.nanosleep: expected 0 <= sec < 2^32 and \
                 0 <= nsec < 1000000000";
  match c_nanosleep sec nsec with
  | 0 -> ()
  | _ -> raise (Error (Unix.ESHUTDOWN, "nanosleep: shutting down"))

let disconnect force = c_disconnect force
let stdio_safe () = c_stdio_safe ()

(* ---- typed parameters ---- *)

type _ kind =
  | String : string kind
  | Bool : bool kind
  | Int : int64 kind
  | Size : int64 kind
  | Enum : string list -> string kind
  | File : string kind
  | Directory : string kind
  | Password : string kind
  | List : string list kind

type 'a param = { pname : string; kind : 'a kind; pslot : int }

(* The script being loaded: the host loads several (a plugin and its
   filters) into one runtime, each in a slot of its own, and sets the
   slot before each one's top level runs.  Callbacks are registered as
   "NBDKit.<slot>.<name>". *)
let slot = ref 0

(* What the server needs of each declaration (enum nbdkit_param_type
   numbers, NBDKIT_PARAM_REQUIRED). *)
type decl = {
  d_name : string;
  d_type : int;
  d_flags : int;
  d_default : string option;
  d_doc : string option;
  d_choices : string option;
}

(* Declarations of each slot, newest first. *)
let decls : (int, decl list) Hashtbl.t = Hashtbl.create 4
let slot_decls s = Option.value ~default:[] (Hashtbl.find_opt decls s)

(* Canonical values given so far, by (slot, key), newest first. *)
let values : (int * string, string list) Hashtbl.t = Hashtbl.create 16

let type_code : type a. a kind -> int = function
  | String -> abi "PARAM_STRING" | Bool -> abi "PARAM_BOOL"
  | Int -> abi "PARAM_INT" | Size -> abi "PARAM_SIZE"
  | Enum _ -> abi "PARAM_ENUM" | File -> abi "PARAM_FILE"
  | Directory -> abi "PARAM_DIRECTORY" | Password -> abi "PARAM_PASSWORD"
  | List -> abi "PARAM_LIST"

let default_string : type a. string -> a kind -> a -> string =
 fun name kind v ->
  match kind with
  | String -> v | File -> v | Directory -> v | Password -> v | Enum _ -> v
  | Bool -> if v then "1" else "0"
  | Int -> Int64.to_string v
  | Size -> Int64.to_string v
  | List -> invalid_arg ("NBDKit.param " ^ name ^ ": a List takes no default")

let valid_name s =
  s <> ""
  && String.for_all
       (function 'a' .. 'z' | 'A' .. 'Z' | '0' .. '9' | '_' | '-' | '.' -> true
               | _ -> false) s

let param : type a.
    ?required:bool -> ?default:a -> ?doc:string -> string -> a kind -> a param
    =
 fun ?(required = false) ?default ?doc name kind ->
  if not (valid_name name) then
    invalid_arg (Printf.sprintf "NBDKit.param: bad parameter name %S" name);
  if name = "script" then
    invalid_arg "NBDKit.param: \"script\" is the host's own parameter";
  let mine = slot_decls !slot in
  if List.exists (fun d -> d.d_name = name) mine then
    invalid_arg ("NBDKit.param: parameter declared twice: " ^ name);
  (match kind with
   | Enum [] -> invalid_arg ("NBDKit.param " ^ name ^ ": an Enum needs choices")
   | _ -> ());
  let d_default = Option.map (default_string name kind) default in
  Hashtbl.replace decls !slot
    ({
      d_name = name;
      d_type = type_code kind;
      d_flags = (if required then abi "PARAM_REQUIRED" else 0);
      d_default;
      d_doc = doc;
      d_choices =
        (match kind with Enum l -> Some (String.concat "|" l) | _ -> None);
    }
    :: mine);
  { pname = name; kind; pslot = !slot }

let get_opt : type a. a param -> a option =
 fun p ->
  match (Hashtbl.find_opt values (p.pslot, p.pname), p.kind) with
  | None, List -> Some []
  | None, _ -> None
  | Some [], _ -> None
  | Some vs, List -> Some (List.rev vs)
  | Some (v :: _), String -> Some v
  | Some (v :: _), File -> Some v
  | Some (v :: _), Directory -> Some v
  | Some (v :: _), Password -> Some v
  | Some (v :: _), Enum _ -> Some v
  | Some (v :: _), Bool -> Some (v = "1")
  | Some (v :: _), Int -> Some (Int64.of_string v)
  | Some (v :: _), Size -> Some (Int64.of_string v)

let get p =
  match get_opt p with
  | Some v -> v
  | None ->
      invalid_arg
        ("NBDKit.get: parameter " ^ p.pname
       ^ " was not given and has no default (use NBDKit.get_opt)")

(* ---- registering ---- *)

(* Slots whose script registered a plugin or a filter. *)
let registered : (int, unit) Hashtbl.t = Hashtbl.create 4

let flag_bits =
  [ (abi "FLAG_MAY_TRIM", May_trim); (abi "FLAG_FUA", FUA);
    (abi "FLAG_REQ_ONE", Req_one); (abi "FLAG_FAST_ZERO", Fast_zero) ]

let flags_of_int n =
  List.fold_right
    (fun (bit, fl) acc -> if n land bit <> 0 then fl :: acc else acc)
    flag_bits []

let int_of_flags fl =
  List.fold_left
    (fun acc (bit, f) -> if List.mem f fl then acc lor bit else acc)
    0 flag_bits

let models =
  [ (Serialize_connections, abi "THREAD_MODEL_SERIALIZE_CONNECTIONS");
    (Serialize_all_requests, abi "THREAD_MODEL_SERIALIZE_ALL_REQUESTS");
    (Serialize_requests, abi "THREAD_MODEL_SERIALIZE_REQUESTS");
    (Serialize_retirement, abi "THREAD_MODEL_SERIALIZE_RETIREMENT");
    (Parallel, abi "THREAD_MODEL_PARALLEL") ]

let model_code m = List.assoc m models

let model_of_code c =
  match List.find_opt (fun (_, n) -> n = c) models with
  | Some (m, _) -> m
  | None -> Parallel

let zero_code = function
  | Zero_none -> abi "ZERO_NONE" | Zero_emulate -> abi "ZERO_EMULATE"
  | Zero_native -> abi "ZERO_NATIVE"

let fua_code = function
  | Fua_none -> abi "FUA_NONE" | Fua_emulate -> abi "FUA_EMULATE"
  | Fua_native -> abi "FUA_NATIVE"

let cache_code = function
  | Cache_none -> abi "CACHE_NONE" | Cache_emulate -> abi "CACHE_EMULATE"
  | Cache_native -> abi "CACHE_NATIVE"

let extents_code = function
  | Extents_none -> abi "EXTENTS_NONE"
  | Extents_emulate -> abi "EXTENTS_EMULATE"
  | Extents_native -> abi "EXTENTS_NATIVE"

let zero_of_code c =
  if c = abi "ZERO_NATIVE" then Zero_native
  else if c = abi "ZERO_EMULATE" then Zero_emulate else Zero_none

let fua_of_code c =
  if c = abi "FUA_NATIVE" then Fua_native
  else if c = abi "FUA_EMULATE" then Fua_emulate else Fua_none

let cache_of_code c =
  if c = abi "CACHE_NATIVE" then Cache_native
  else if c = abi "CACHE_EMULATE" then Cache_emulate else Cache_none

let extents_of_code c =
  if c = abi "EXTENTS_NATIVE" then Extents_native
  else if c = abi "EXTENTS_EMULATE" then Extents_emulate else Extents_none

let extent_hole = abi "EXTENT_HOLE"
let extent_zero = abi "EXTENT_ZERO"

let extent_code e =
  (if e.is_hole then extent_hole else 0) lor if e.is_zero then extent_zero else 0

let extent_of_tuple (offset, length, ty) =
  { offset; length; is_hole = ty land extent_hole <> 0;
    is_zero = ty land extent_zero <> 0 }

let reg name f = Callback.register (Printf.sprintf "NBDKit.%d.%s" !slot name) f
let opt name f = function None -> () | Some cb -> reg name (f cb)
let int_of_bool b = if b then 1 else 0

let claim what =
  if Hashtbl.mem registered !slot then
    failwith
      ("NBDKit." ^ what
     ^ ": a script registers one plugin or one filter, once");
  Hashtbl.replace registered !slot ()

(* key=value for slot S: stored for [get], then the script's config. *)
let config_closure s config key value =
  if Hashtbl.mem values (s, key)
     || List.exists (fun d -> d.d_name = key) (slot_decls s)
  then
    Hashtbl.replace values (s, key)
      (value :: Option.value ~default:[] (Hashtbl.find_opt values (s, key)));
  match config with
  | Some f -> f key value
  | None ->
      if slot_decls s = [] then
        raise
          (Error
             ( Unix.EINVAL,
               Printf.sprintf
                 "%s=%s: the script takes no parameters (it declares none \
                  with NBDKit.param and has no config callback)"
                 key value ))

(* What plugins and filters register alike. *)
let register_common ~name ?longname ?version ?description ?config_help
    ?unload ?config ?config_complete ?dump_plugin ?thread_model ?get_ready ()
    =
  reg "identity" (name, longname, version, description, config_help);
  reg "config" (config_closure !slot config);
  opt "unload" (fun f () -> f ()) unload;
  opt "config_complete" (fun f () -> f ()) config_complete;
  opt "dump_plugin" (fun f () -> f (); Stdlib.flush stdout) dump_plugin;
  opt "thread_model" (fun f () -> model_code (f ())) thread_model;
  opt "get_ready" (fun f m -> f (model_of_code m)) get_ready

(* Handles live here, keyed by the number the C side keeps. *)
let handle_table () =
  let handles = Hashtbl.create 16 and next = ref 0 in
  let h id =
    try Hashtbl.find handles id
    with Not_found -> failwith "NBDKit: unknown connection handle"
  in
  let add hd = incr next; Hashtbl.replace handles !next hd; !next in
  let remove id =
    let hd = Hashtbl.find_opt handles id in
    Hashtbl.remove handles id;
    hd
  in
  (h, add, remove)

let exports_array l =
  Array.of_list (List.map (fun (e : export) -> (e.name, e.description)) l)

let extents_array l =
  Array.of_list (List.map (fun e -> (e.offset, e.length, extent_code e)) l)

let block_size_tuple b = (b.minimum, b.preferred, b.maximum, b.maximum_virtual)

(* The buffer pread_buf fills: the server's own memory. *)
type buf = (char, Bigarray.int8_unsigned_elt, Bigarray.c_layout) Bigarray.Array1.t

let register_plugin ~name ?longname ?version ?description ?config_help ?unload
    ?config ?config_complete ?dump_plugin ?thread_model ?get_ready ?after_fork
    ?cleanup ?preconnect ?list_exports ?default_export ?magic_config_key
    ~open_connection ?close ~get_size ?export_description ?block_size
    ?can_write ?can_flush ?is_rotational ?can_trim ?can_zero ?can_fast_zero
    ?can_fua ?can_multi_conn ?can_extents ?can_cache ?pread ?pread_buf ?pwrite
    ?flush ?trim ?zero ?extents ?cache () =
  claim "register_plugin";
  (match (pread, pread_buf) with
   | None, None ->
       invalid_arg "NBDKit.register_plugin: give ~pread or ~pread_buf"
   | Some _, Some _ ->
       invalid_arg "NBDKit.register_plugin: give ~pread or ~pread_buf, not both"
   | _ -> ());
  let h, add, remove = handle_table () in
  register_common ~name ?longname ?version ?description ?config_help ?unload
    ?config ?config_complete ?dump_plugin ?thread_model ?get_ready ();
  Option.iter (reg "magic_config_key") magic_config_key;
  opt "after_fork" (fun f () -> f ()) after_fork;
  opt "cleanup" (fun f () -> f ()) cleanup;
  opt "preconnect" (fun f ro -> f ro) preconnect;
  opt "list_exports" (fun f ro tls -> exports_array (f ro tls)) list_exports;
  opt "default_export" (fun f ro tls -> f ro tls) default_export;
  reg "open" (fun ro exportname tls -> add (open_connection ro exportname tls));
  reg "close" (fun id ->
      match remove id with
      | None -> ()
      | Some hd -> Option.iter (fun f -> f hd) close);
  reg "get_size" (fun id -> get_size (h id));
  opt "export_description" (fun f id -> f (h id)) export_description;
  opt "block_size" (fun f id req -> block_size_tuple (f (h id) req)) block_size;
  let can_bool name = opt name (fun f id -> int_of_bool (f (h id))) in
  can_bool "can_write" can_write;
  can_bool "can_flush" can_flush;
  can_bool "is_rotational" is_rotational;
  can_bool "can_trim" can_trim;
  can_bool "can_fast_zero" can_fast_zero;
  can_bool "can_multi_conn" can_multi_conn;
  opt "can_zero" (fun f id -> zero_code (f (h id))) can_zero;
  opt "can_fua" (fun f id -> fua_code (f (h id))) can_fua;
  opt "can_extents" (fun f id -> extents_code (f (h id))) can_extents;
  opt "can_cache" (fun f id -> cache_code (f (h id))) can_cache;
  opt "pread" (fun f id buf off fl -> f (h id) buf off (flags_of_int fl)) pread;
  opt "pread_buf"
    (fun f id (buf : buf) off fl -> f (h id) buf off (flags_of_int fl))
    pread_buf;
  opt "pwrite" (fun f id buf off fl -> f (h id) buf off (flags_of_int fl)) pwrite;
  opt "flush" (fun f id fl -> f (h id) (flags_of_int fl)) flush;
  let range name =
    opt name (fun f id count off fl -> f (h id) count off (flags_of_int fl))
  in
  range "trim" trim;
  range "zero" zero;
  range "cache" cache;
  opt "extents"
    (fun f id count off fl ->
      extents_array (f (h id) count off (flags_of_int fl)))
    extents

(* ---- reads ---- *)

external c_read_hole : int64 -> int64 -> unit = "ocaml_nbdkit_read_hole"
external c_read_error_at : int64 -> unit = "ocaml_nbdkit_read_error_at"
external c_read_lend : int64 -> buf -> unit = "ocaml_nbdkit_read_lend"

let read_hole offset length = c_read_hole offset length
let read_error_at offset = c_read_error_at offset
let read_lend offset data = c_read_lend offset data

(* ---- filters ---- *)

type next = nativeint

module Next = struct
  external get_size : next -> int64 = "ocaml_nbdkit_next_get_size"
  external c_can : next -> int -> int = "ocaml_nbdkit_next_can"
  external c_pread : next -> bytes -> int64 -> int -> unit
    = "ocaml_nbdkit_next_pread"
  external c_pwrite : next -> string -> int64 -> int -> unit
    = "ocaml_nbdkit_next_pwrite"
  external c_flush : next -> int -> unit = "ocaml_nbdkit_next_flush"
  external c_range : next -> int -> int64 -> int64 -> int -> unit
    = "ocaml_nbdkit_next_range"
  external c_extents : next -> int64 -> int64 -> int ->
    (int64 * int64 * int) array = "ocaml_nbdkit_next_extents"
  external export_description : next -> string option
    = "ocaml_nbdkit_next_export_description"
  external c_block_size : next -> int * int * int * int64
    = "ocaml_nbdkit_next_block_size"

  let block_size n =
    let minimum, preferred, maximum, maximum_virtual = c_block_size n in
    { minimum; preferred; maximum; maximum_virtual }

  (* The order of ocaml_nbdkit_next_can's table in filter.c. *)
  let can_write n = c_can n 0 <> 0
  let can_flush n = c_can n 1 <> 0
  let is_rotational n = c_can n 2 <> 0
  let can_trim n = c_can n 3 <> 0
  let can_zero n = zero_of_code (c_can n 4)
  let can_fast_zero n = c_can n 5 <> 0
  let can_fua n = fua_of_code (c_can n 6)
  let can_multi_conn n = c_can n 7 <> 0
  let can_extents n = extents_of_code (c_can n 8)
  let can_cache n = cache_of_code (c_can n 9)
  let pread n buf offset flags = c_pread n buf offset (int_of_flags flags)

  external c_pread_request : next -> int -> unit
    = "ocaml_nbdkit_next_pread_request"

  let pread_request n flags = c_pread_request n (int_of_flags flags)
  let pwrite n data offset flags = c_pwrite n data offset (int_of_flags flags)
  let flush n flags = c_flush n (int_of_flags flags)
  let trim n count offset flags = c_range n 0 count offset (int_of_flags flags)
  let zero n count offset flags = c_range n 1 count offset (int_of_flags flags)
  let cache n count offset flags = c_range n 2 count offset (int_of_flags flags)

  let extents n count offset flags =
    Array.to_list
      (Array.map extent_of_tuple
         (c_extents n count offset (int_of_flags flags)))
end

external next_open : bool -> string -> unit = "ocaml_nbdkit_next_open"

external next_context_open : bool -> string -> next
  = "ocaml_nbdkit_next_context_open"

external next_context_close : next -> unit = "ocaml_nbdkit_next_context_close"

external c_list_exports_below : bool -> bool -> (string * string option) array
  = "ocaml_nbdkit_list_exports_below"

external default_export_below : bool -> bool -> string
  = "ocaml_nbdkit_default_export_below"

let list_exports_below ro tls =
  Array.to_list
    (Array.map
       (fun (name, description) -> { name; description })
       (c_list_exports_below ro tls))

let register_filter ~name ?longname ?version ?description ?config_help ?unload
    ?config ?config_complete ?dump_plugin ?thread_model ?get_ready ?after_fork
    ?cleanup ?preconnect ?list_exports ?default_export ~open_connection ?close
    ?prepare ?finalize ?get_size ?export_description ?block_size
    ?can_write ?can_flush ?is_rotational ?can_trim ?can_zero ?can_fast_zero
    ?can_fua ?can_multi_conn ?can_extents ?can_cache ?pread ?pwrite ?flush
    ?trim ?zero ?extents ?cache () =
  claim "register_filter";
  let h, add, remove = handle_table () in
  register_common ~name ?longname ?version ?description ?config_help ?unload
    ?config ?config_complete ?dump_plugin ?thread_model ?get_ready ();
  reg "filter" true;
  opt "after_fork" (fun f () -> f ()) after_fork;
  opt "cleanup" (fun f () -> f ()) cleanup;
  opt "preconnect" (fun f ro -> f ro) preconnect;
  opt "list_exports" (fun f ro tls -> exports_array (f ro tls)) list_exports;
  opt "default_export" (fun f ro tls -> f ro tls) default_export;
  reg "open" (fun ro exportname tls -> add (open_connection ro exportname tls));
  reg "close" (fun id ->
      match remove id with
      | None -> ()
      | Some hd -> Option.iter (fun f -> f hd) close);
  opt "prepare" (fun f (n : next) id ro -> f n (h id) ro) prepare;
  opt "finalize" (fun f (n : next) id -> f n (h id)) finalize;
  let cb name f = opt name (fun g (n : next) id -> f g n (h id)) in
  cb "get_size" (fun f n hd -> f n hd) get_size;
  cb "export_description" (fun f n hd -> f n hd) export_description;
  opt "block_size"
    (fun f (n : next) id req -> block_size_tuple (f n (h id) req)) block_size;
  let can_bool name = cb name (fun f n hd -> int_of_bool (f n hd)) in
  can_bool "can_write" can_write;
  can_bool "can_flush" can_flush;
  can_bool "is_rotational" is_rotational;
  can_bool "can_trim" can_trim;
  can_bool "can_fast_zero" can_fast_zero;
  can_bool "can_multi_conn" can_multi_conn;
  cb "can_zero" (fun f n hd -> zero_code (f n hd)) can_zero;
  cb "can_fua" (fun f n hd -> fua_code (f n hd)) can_fua;
  cb "can_extents" (fun f n hd -> extents_code (f n hd)) can_extents;
  cb "can_cache" (fun f n hd -> cache_code (f n hd)) can_cache;
  let data name f =
    opt name (fun g (n : next) id a b fl -> f g n (h id) a b (flags_of_int fl))
  in
  data "pread" (fun f n hd buf off fl -> f n hd buf off fl) pread;
  data "pwrite" (fun f n hd buf off fl -> f n hd buf off fl) pwrite;
  opt "flush" (fun f (n : next) id fl -> f n (h id) (flags_of_int fl)) flush;
  data "trim" (fun f n hd count off fl -> f n hd count off fl) trim;
  data "zero" (fun f n hd count off fl -> f n hd count off fl) zero;
  data "cache" (fun f n hd count off fl -> f n hd count off fl) cache;
  data "extents"
    (fun f n hd count off fl -> extents_array (f n hd count off fl))
    extents

(* ---- for the host (host.c, plugin.c, filter.c) ---- *)

let () =
  (* Backtraces of the script's exceptions are logged by default. *)
  Printexc.record_backtrace true;
  Callback.register_exception "NBDKit.Error" (Error (Unix.EIO, ""));
  Callback.register "NBDKit.set_slot" (fun s -> slot := s);
  Callback.register "NBDKit.registered" (fun s -> Hashtbl.mem registered s);
  Callback.register "NBDKit.params" (fun s ->
      Array.of_list
        (List.rev_map
           (fun d -> (d.d_name, d.d_type, d.d_flags, d.d_default, d.d_doc,
                      d.d_choices))
           (slot_decls s)));
  (* What a failed callback tells the client: (errno, message, deliberate). *)
  Callback.register "NBDKit.describe_exn" (fun exn ->
      match exn with
      | Error (e, msg) ->
          (errno_of_unix_error e, (if msg = "" then Unix.error_message e else msg),
           true)
      | Unix.Unix_error (e, fn, arg) ->
          ( errno_of_unix_error e,
            Printf.sprintf "%s%s: %s" fn
              (if arg = "" then "" else " " ^ arg)
              (Unix.error_message e),
            true )
      | Out_of_memory -> (abi "ENOMEM", "out of memory", false)
      | exn ->
          let bt = Printexc.get_backtrace () in
          (0, Printexc.to_string exn ^ (if bt = "" then "" else "\n" ^ bt),
           false))
