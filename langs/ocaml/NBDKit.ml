(* NBDKit.ml: the module scripts see (NBDKit.mli documents it).

   The script's callbacks are wrapped here into functions of plain
   types (ints for handles and flags, int64 for offsets) registered
   with Callback.register under "NBDKit.<callback>"; plugin.c looks
   them up by name and calls them under the host's lock.  A callback
   the script leaves out is never registered, so plugin.c can take it
   out of the plugin struct. *)

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
external c_nanosleep : int -> int -> int = "ocaml_nbdkit_nanosleep"
external shutdown : unit -> unit = "ocaml_nbdkit_shutdown"
external c_disconnect : bool -> unit = "ocaml_nbdkit_disconnect"
external c_stdio_safe : unit -> bool = "ocaml_nbdkit_stdio_safe"
external c_version : unit -> string = "ocaml_nbdkit_version"

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

type 'a param = { pname : string; kind : 'a kind }

(* What the server needs of each declaration (enum nbdkit_param_type
   numbers, NBDKIT_PARAM_REQUIRED = 1). *)
type decl = {
  d_name : string;
  d_type : int;
  d_flags : int;
  d_default : string option;
  d_doc : string option;
  d_choices : string option;
}

let decls : decl list ref = ref []  (* newest first *)

(* Canonical values given so far, newest first. *)
let values : (string, string list) Hashtbl.t = Hashtbl.create 16

let type_code : type a. a kind -> int = function
  | String -> 1 | Bool -> 2 | Int -> 3 | Size -> 4 | Enum _ -> 5
  | File -> 6 | Directory -> 7 | Password -> 8 | List -> 9

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
  if List.exists (fun d -> d.d_name = name) !decls then
    invalid_arg ("NBDKit.param: parameter declared twice: " ^ name);
  (match kind with
   | Enum [] -> invalid_arg ("NBDKit.param " ^ name ^ ": an Enum needs choices")
   | _ -> ());
  let d_default = Option.map (default_string name kind) default in
  decls :=
    {
      d_name = name;
      d_type = type_code kind;
      d_flags = (if required then 1 else 0);
      d_default;
      d_doc = doc;
      d_choices =
        (match kind with Enum l -> Some (String.concat "|" l) | _ -> None);
    }
    :: !decls;
  { pname = name; kind }

let get_opt : type a. a param -> a option =
 fun p ->
  match (Hashtbl.find_opt values p.pname, p.kind) with
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

(* ---- the plugin ---- *)

let registered = ref false

let flags_of_int n =
  let f bit fl acc = if n land bit <> 0 then fl :: acc else acc in
  f 1 May_trim (f 2 FUA (f 4 Req_one (f 8 Fast_zero [])))

let model_code = function
  | Serialize_connections -> 1000
  | Serialize_all_requests -> 2000
  | Serialize_requests -> 3000
  | Serialize_retirement -> 3500
  | Parallel -> 4000

let model_of_code = function
  | 1000 -> Serialize_connections
  | 2000 -> Serialize_all_requests
  | 3000 -> Serialize_requests
  | 3500 -> Serialize_retirement
  | _ -> Parallel

let reg name f = Callback.register ("NBDKit." ^ name) f
let opt name f = function None -> () | Some cb -> reg name (f cb)
let int_of_bool b = if b then 1 else 0

let register_plugin ~name ?longname ?version ?description ?config_help ?unload
    ?config ?config_complete ?dump_plugin ?thread_model ?get_ready ?after_fork
    ?cleanup ?preconnect ?list_exports ?default_export ~open_connection
    ?close ~get_size ?export_description ?block_size ?can_write ?can_flush
    ?is_rotational ?can_trim ?can_zero ?can_fast_zero ?can_fua ?can_multi_conn
    ?can_extents ?can_cache ~pread ?pwrite ?flush ?trim ?zero ?extents ?cache
    () =
  if !registered then failwith "NBDKit.register_plugin called twice";
  registered := true;
  (* Handles live here, keyed by the number the C side keeps. *)
  let handles = Hashtbl.create 16 in
  let next = ref 0 in
  let h id =
    try Hashtbl.find handles id
    with Not_found -> failwith "NBDKit: unknown connection handle"
  in
  reg "identity" (name, longname, version, description, config_help);
  reg "config" (fun key value ->
      if Hashtbl.mem values key || List.exists (fun d -> d.d_name = key) !decls
      then
        Hashtbl.replace values key
          (value :: Option.value ~default:[] (Hashtbl.find_opt values key));
      match config with
      | Some f -> f key value
      | None ->
          if !decls = [] then
            raise
              (Error
                 ( Unix.EINVAL,
                   Printf.sprintf
                     "%s=%s: the script takes no parameters (it declares \
                      none with NBDKit.param and has no config callback)"
                     key value )));
  opt "unload" (fun f () -> f ()) unload;
  opt "config_complete" (fun f () -> f ()) config_complete;
  opt "dump_plugin" (fun f () -> f (); Stdlib.flush stdout) dump_plugin;
  opt "thread_model" (fun f () -> model_code (f ())) thread_model;
  opt "get_ready" (fun f m -> f (model_of_code m)) get_ready;
  opt "after_fork" (fun f () -> f ()) after_fork;
  opt "cleanup" (fun f () -> f ()) cleanup;
  opt "preconnect" (fun f ro -> f ro) preconnect;
  opt "list_exports"
    (fun f ro tls ->
      Array.of_list (List.map (fun (e : export) -> (e.name, e.description))
                       (f ro tls)))
    list_exports;
  opt "default_export" (fun f ro tls -> f ro tls) default_export;
  reg "open" (fun ro exportname tls ->
      let hd = open_connection ro exportname tls in
      incr next;
      Hashtbl.replace handles !next hd;
      !next);
  reg "close" (fun id ->
      match Hashtbl.find_opt handles id with
      | None -> ()
      | Some hd ->
          Hashtbl.remove handles id;
          Option.iter (fun f -> f hd) close);
  reg "get_size" (fun id -> get_size (h id));
  opt "export_description" (fun f id -> f (h id)) export_description;
  opt "block_size"
    (fun f id req ->
      let b = f (h id) req in
      (b.minimum, b.preferred, b.maximum, b.maximum_virtual))
    block_size;
  let can_bool name = opt name (fun f id -> int_of_bool (f (h id))) in
  can_bool "can_write" can_write;
  can_bool "can_flush" can_flush;
  can_bool "is_rotational" is_rotational;
  can_bool "can_trim" can_trim;
  can_bool "can_fast_zero" can_fast_zero;
  can_bool "can_multi_conn" can_multi_conn;
  opt "can_zero"
    (fun f id ->
      match f (h id) with Zero_none -> 0 | Zero_emulate -> 1 | Zero_native -> 2)
    can_zero;
  opt "can_fua"
    (fun f id ->
      match f (h id) with Fua_none -> 0 | Fua_emulate -> 1 | Fua_native -> 2)
    can_fua;
  opt "can_extents"
    (fun f id ->
      match f (h id) with
      | Extents_none -> 0 | Extents_emulate -> 1 | Extents_native -> 2)
    can_extents;
  opt "can_cache"
    (fun f id ->
      match f (h id) with
      | Cache_none -> 0 | Cache_emulate -> 1 | Cache_native -> 2)
    can_cache;
  reg "pread" (fun id buf off fl -> pread (h id) buf off (flags_of_int fl));
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
      Array.of_list
        (List.map
           (fun e ->
             ( e.offset,
               e.length,
               (if e.is_hole then 1 else 0) lor if e.is_zero then 2 else 0 ))
           (f (h id) count off (flags_of_int fl))))
    extents

(* ---- for the host (plugin.c) ---- *)

let () =
  reg "registered" (fun () -> !registered);
  reg "params" (fun () ->
      Array.of_list
        (List.rev_map
           (fun d -> (d.d_name, d.d_type, d.d_flags, d.d_default, d.d_doc,
                      d.d_choices))
           !decls));
  (* What a failed callback tells the client: (errno, message, deliberate). *)
  reg "describe_exn" (fun exn ->
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
      | Out_of_memory -> (12, "out of memory", false)
      | exn ->
          let bt =
            if Printexc.backtrace_status () then
              "\n" ^ Printexc.get_backtrace ()
            else ""
          in
          (0, Printexc.to_string exn ^ bt, false))
