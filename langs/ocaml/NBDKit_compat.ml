(* NBDKit_compat.ml: nbdkit's own OCaml plugin API, on top of ours.

   Plugins written for nbdkit (its plugins/ocaml/NBDKit.mli: pread
   returning a string, open_connection taking only readonly,
   THREAD_MODEL_* constructors, ...) name a module NBDKit whose types
   differ from our NBDKit.  The host compiles a script against our
   NBDKit first; if that fails, it compiles it again with
   [-open NBDKit_compat], so that NBDKit in the script names the module
   below, which registers the script through ours.  The types shared
   with our module (flags, extents, exports) are the same types. *)

module Ours = NBDKit

module NBDKit = struct
  exception Error = Ours.Error

  type flag = Ours.flag = May_trim | FUA | Req_one | Fast_zero
  type flags = flag list
  type fua_flag = FuaNone | FuaEmulate | FuaNative
  type cache_flag = CacheNone | CacheEmulate | CacheNop

  type extent = Ours.extent = {
    offset : int64;
    length : int64;
    is_hole : bool;
    is_zero : bool;
  }

  type export = Ours.export = { name : string; description : string option }

  type thread_model =
    | THREAD_MODEL_SERIALIZE_CONNECTIONS
    | THREAD_MODEL_SERIALIZE_ALL_REQUESTS
    | THREAD_MODEL_SERIALIZE_REQUESTS
    | THREAD_MODEL_PARALLEL

  let model = function
    | THREAD_MODEL_SERIALIZE_CONNECTIONS -> Ours.Serialize_connections
    | THREAD_MODEL_SERIALIZE_ALL_REQUESTS -> Ours.Serialize_all_requests
    | THREAD_MODEL_SERIALIZE_REQUESTS -> Ours.Serialize_requests
    | THREAD_MODEL_PARALLEL -> Ours.Parallel

  let register_plugin ~name ?longname ?version ?description ?load ?get_ready
      ?after_fork ?cleanup ?unload ?config ?config_complete ?config_help
      ?thread_model ?magic_config_key ?preconnect ~open_connection ?close
      ~get_size ?block_size ?can_cache ?can_extents ?can_fast_zero ?can_flush
      ?can_fua ?can_multi_conn ?can_trim ?can_write ?can_zero ?is_rotational
      ~pread ?pwrite ?flush ?trim ?zero ?extents ?cache ?dump_plugin
      ?list_exports ?default_export ?export_description () =
    (* nbdkit calls load as the plugin is loaded: now. *)
    Option.iter (fun f -> f ()) load;
    let map f = Option.map f in
    Ours.register_plugin ~name ?longname ?version ?description ?config_help
      ?unload ?config ?config_complete ?dump_plugin
      ?thread_model:(map (fun f () -> model (f ())) thread_model)
      ?get_ready:(map (fun f _ -> f ()) get_ready)
      ?after_fork ?cleanup ?preconnect ?list_exports ?default_export
      ?magic_config_key
      ~open_connection:(fun ro _ _ -> open_connection ro)
      ?close ~get_size ?export_description
      ?block_size:
        (map
           (fun f h _ ->
             let minimum, preferred, maximum = f h in
             (* nbdkit keeps the low 32 bits (-1L: 2^32-1); a v2
                maximum bounds data requests only. *)
             { Ours.minimum; preferred;
               maximum = Int64.to_int (Int64.logand maximum 0xffff_ffffL);
               maximum_virtual = 0L })
           block_size)
      ?can_write ?can_flush ?is_rotational ?can_trim
      ?can_zero:
        (map (fun f h -> if f h then Ours.Zero_native else Ours.Zero_emulate)
           can_zero)
      ?can_fast_zero
      ?can_fua:
        (map
           (fun f h ->
             match f h with
             | FuaNone -> Ours.Fua_none
             | FuaEmulate -> Ours.Fua_emulate
             | FuaNative -> Ours.Fua_native)
           can_fua)
      ?can_multi_conn
      ?can_extents:
        (map
           (fun f h ->
             if f h then Ours.Extents_native else Ours.Extents_emulate)
           can_extents)
      ?can_cache:
        (map
           (fun f h ->
             match f h with
             | CacheNone -> Ours.Cache_none
             | CacheEmulate -> Ours.Cache_emulate
             | CacheNop -> Ours.Cache_native)
           can_cache)
      ~pread:(fun h buf offset flags ->
        let want = Bytes.length buf in
        let s = pread h want offset flags in
        if String.length s < want then
          raise
            (Error
               ( Unix.EIO,
                 Printf.sprintf "pread returned %d bytes, %d were asked for"
                   (String.length s) want ));
        Bytes.blit_string s 0 buf 0 want)
      ?pwrite ?flush ?trim ?zero ?extents
      ?cache:
        (match (cache, can_cache) with
         | None, Some _ -> Some (fun _ _ _ _ -> ()) (* CacheNop: nothing *)
         | _ -> cache)
      ()

  let set_error = Ours.set_error

  (* nbdkit raises Invalid_argument here (the reason is logged). *)
  let invalid f what s =
    try f s with Ours.Error _ -> invalid_arg (what ^ ": " ^ s)

  let parse_size = invalid Ours.parse_size "parse_size"
  let parse_bool = invalid Ours.parse_bool "parse_bool"
  let read_password = invalid Ours.read_password "read_password"
  let realpath = invalid Ours.realpath "realpath"
  let nanosleep = Ours.nanosleep
  let export_name = Ours.export_name
  let shutdown = Ours.shutdown
  let disconnect = Ours.disconnect
  let debug = Ours.debug
  external compat_version : unit -> string = "ocaml_nbdkit_compat_version"

  (* The nbdkit version whose interface the server offers. *)
  let version () = compat_version ()
  let api_version () = 2
  let peer_pid = Ours.peer_pid
  let peer_uid = Ours.peer_uid
  let peer_gid = Ours.peer_gid

  (* Beyond nbdkit's module: the rest of ours, same names. *)
  let error = Ours.error
  let is_tls = Ours.is_tls
  let parse_probability = Ours.parse_probability
  let stdio_safe = Ours.stdio_safe
end
