(* The probe plugin of tests/integration/hosts-defaults.py in OCaml:
   the callbacks named in $PROBE, over a RAM disk. *)
let have =
  String.split_on_char ','
    (try Sys.getenv "PROBE" with Not_found -> "")

let opt name f = if List.mem name have then Some f else None
let disk = Bytes.make 1048576 '\000'

let () =
  NBDKit.register_plugin ~name:"probe"
    ~open_connection:(fun _ _ _ -> ())
    ~get_size:(fun () -> 1048576L)
    ~pread:(fun () buf offset _ ->
      Bytes.blit disk (Int64.to_int offset) buf 0 (Bytes.length buf))
    ?pwrite:(opt "pwrite" (fun () data offset _ ->
      Bytes.blit_string data 0 disk (Int64.to_int offset)
        (String.length data)))
    ?flush:(opt "flush" (fun () _ -> ()))
    ?trim:(opt "trim" (fun () _ _ _ -> ()))
    ?zero:(opt "zero" (fun () count offset _ ->
      Bytes.fill disk (Int64.to_int offset) (Int64.to_int count) '\000'))
    ?cache:(opt "cache" (fun () _ _ _ -> ()))
    ?extents:(opt "extents" (fun () count offset _ ->
      [ { NBDKit.offset; length = count; is_hole = false; is_zero = false } ]))
    ()
