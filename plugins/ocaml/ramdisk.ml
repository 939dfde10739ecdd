(* ramdisk.ml: a RAM disk written in OCaml.

     nbdkit ramdisk.ml size=1G

   The disk starts as zeroes and keeps what clients write until the
   server exits; every client sees the same disk.  Data is held in
   64 KiB blocks created on first write, so an untouched disk costs
   nothing, and untouched blocks are reported as holes.

   Parameters:
     size=SIZE   the size of the disk (required), e.g. 1G, 512M *)

let size = NBDKit.param "size" NBDKit.Size ~required:true
             ~doc:"size of the disk, e.g. 1G"

let block = 65536
let blocks : (int, Bytes.t) Hashtbl.t = Hashtbl.create 1024

(* Visit the blocks of [offset, offset+count): f blk start len pos,
   START the offset in the block, POS the offset in the request. *)
let each_block count offset f =
  let offset = Int64.to_int offset and count = Int64.to_int count in
  let pos = ref 0 in
  while !pos < count do
    let o = offset + !pos in
    let start = o mod block in
    let len = min (block - start) (count - !pos) in
    f (o / block) start len !pos;
    pos := !pos + len
  done

let pread () buf offset _flags =
  each_block (Int64.of_int (Bytes.length buf)) offset (fun b start len pos ->
      match Hashtbl.find_opt blocks b with
      | Some data -> Bytes.blit data start buf pos len
      | None -> Bytes.fill buf pos len '\000')

let pwrite () data offset _flags =
  each_block (Int64.of_int (String.length data)) offset
    (fun b start len pos ->
      let d =
        match Hashtbl.find_opt blocks b with
        | Some d -> d
        | None ->
            let d = Bytes.make block '\000' in
            Hashtbl.replace blocks b d;
            d
      in
      Bytes.blit_string data pos d start len)

(* Trim and zero: whole blocks are dropped, partial ones zeroed. *)
let zero () count offset _flags =
  each_block count offset (fun b start len _ ->
      if len = block then Hashtbl.remove blocks b
      else
        match Hashtbl.find_opt blocks b with
        | Some d -> Bytes.fill d start len '\000'
        | None -> ())

let extents () count offset _flags =
  let l = ref [] in
  each_block count offset (fun b start len _ ->
      let hole = not (Hashtbl.mem blocks b) in
      l :=
        { NBDKit.offset = Int64.of_int ((b * block) + start);
          length = Int64.of_int len; is_hole = hole; is_zero = hole }
        :: !l);
  List.rev !l

let () =
  NBDKit.register_plugin ~name:"ramdisk"
    ~description:"A RAM disk written in OCaml."
    ~open_connection:(fun _readonly _export _tls -> ())
    ~get_size:(fun () -> NBDKit.get size)
    ~pread ~pwrite ~zero ~trim:zero ~extents
    ~flush:(fun () _ -> ())
    ~can_multi_conn:(fun () -> true)
    ~can_zero:(fun () -> NBDKit.Zero_native)
    ~can_fua:(fun () -> NBDKit.Fua_native)
    ~can_extents:(fun () -> NBDKit.Extents_native)
    ()
