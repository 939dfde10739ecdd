(* memdisk.ml: a RAM disk written against nbdkit's own OCaml API.

     nbdkit memdisk.ml 64M           (a bare value is the size)
     nbdkit memdisk.ml size=64M

   The same plugin runs under nbdkit's OCaml plugin: it uses only the
   NBDKit module nbdkit documents (pread returning a string,
   open_connection taking readonly, THREAD_MODEL_* constants).  Our
   host compiles such a script against that API by itself.

   Parameters:
     size=SIZE   the size of the disk (default 1M)
     ro=BOOL     refuse writes *)

let disk = ref (Bytes.make (1024 * 1024) '\000')
let readonly_disk = ref false
let loaded = ref false

let load () = loaded := true

let config key value =
  match key with
  | "size" -> disk := Bytes.make (Int64.to_int (NBDKit.parse_size value)) '\000'
  | "ro" -> readonly_disk := NBDKit.parse_bool value
  | _ -> failwith (Printf.sprintf "unknown parameter: %s" key)

let dump_plugin () =
  Printf.printf "memdisk_loaded=%b\nmemdisk_api=%d\n" !loaded
    (NBDKit.api_version ());
  flush stdout

type handle = { export : string }

let open_connection _readonly = { export = NBDKit.export_name () }

let get_size _h = Int64.of_int (Bytes.length !disk)

let can_write _h = not !readonly_disk

let pread h count offset _flags =
  (* An export named "fail" shows how errors reach the client. *)
  if h.export = "fail" then begin
    NBDKit.set_error Unix.EPERM;
    failwith "reads refused on this export"
  end;
  Bytes.sub_string !disk (Int64.to_int offset) count

let pwrite _h buf offset _flags =
  Bytes.blit_string buf 0 !disk (Int64.to_int offset) (String.length buf)

let zero _h count offset _flags =
  Bytes.fill !disk (Int64.to_int offset) (Int64.to_int count) '\000'

let thread_model () = NBDKit.THREAD_MODEL_SERIALIZE_ALL_REQUESTS

let () =
  NBDKit.register_plugin
    ~name:"memdisk"
    ~version:(NBDKit.version ())
    ~load ~config ~dump_plugin
    ~magic_config_key:"size"
    ~open_connection ~get_size ~can_write
    ~can_zero:(fun _ -> true)
    ~can_fua:(fun _ -> NBDKit.FuaNative)
    ~can_cache:(fun _ -> NBDKit.CacheNop)
    ~block_size:(fun _ -> (1, 4096, 0xffff_ffffL))
    ~pread ~pwrite ~zero ~thread_model
    ()
