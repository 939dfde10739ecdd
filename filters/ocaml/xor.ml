(* xor.ml: XOR every byte read and written with a key.

     nbdkit --filter=xor.ml PLUGIN ... xorkey=N

   The layer below holds each byte XORed with N; clients see the plain
   bytes.  Not encryption: an example of a filter that changes data on
   its way through.

   Parameters:
     xorkey=N   the key, 0 to 255 (default 0: unchanged) *)

let xorkey = NBDKit.param "xorkey" NBDKit.Int ~default:0L
               ~doc:"the byte to XOR with, 0 to 255"

let key = ref 0

let config_complete () =
  let k = NBDKit.get xorkey in
  if k < 0L || k > 255L then
    raise (NBDKit.Error (Unix.EINVAL,
                         Printf.sprintf "xorkey=%Ld: expected 0 to 255" k));
  key := Int64.to_int k

let xor_bytes b =
  for i = 0 to Bytes.length b - 1 do
    Bytes.unsafe_set b i
      (Char.unsafe_chr (Char.code (Bytes.unsafe_get b i) lxor !key))
  done

(* With key 0 the data passes as it is, holes included. *)
let pread next () buf offset flags =
  if !key = 0 then NBDKit.Next.pread_request next flags
  else begin
    NBDKit.Next.pread next buf offset flags;
    xor_bytes buf
  end

let pwrite next () data offset flags =
  let b = Bytes.of_string data in
  xor_bytes b;
  NBDKit.Next.pwrite next (Bytes.unsafe_to_string b) offset flags

(* Zeroes below would read back as the key: write the key instead,
   unless the key is 0. *)
let zero next () count offset flags =
  if !key = 0 then NBDKit.Next.zero next count offset flags
  else
    let chunk = 1 lsl 20 in
    let rec loop count offset =
      if count > 0L then begin
        let n = Int64.to_int (min count (Int64.of_int chunk)) in
        NBDKit.Next.pwrite next (String.make n (Char.chr !key)) offset
          (List.filter (fun f -> f = NBDKit.FUA) flags);
        loop (Int64.sub count (Int64.of_int n)) (Int64.add offset (Int64.of_int n))
      end
    in
    loop count offset

(* Holes below read as the key, not as zeroes: report data. *)
let extents next () count offset flags =
  if !key = 0 then NBDKit.Next.extents next count offset flags
  else [ { NBDKit.offset; length = count; is_hole = false; is_zero = false } ]

let () =
  NBDKit.register_filter ~name:"xor"
    ~description:"XOR every byte read and written with xorkey"
    ~config_complete
    ~open_connection:(fun _readonly _exportname _is_tls -> ())
    ~pread ~pwrite ~zero ~extents
    (* Trimmed bytes below may read as zeroes: not ours to drop. *)
    ~can_trim:(fun _ () -> false)
    ~can_fast_zero:(fun next () -> !key = 0 && NBDKit.Next.can_fast_zero next)
    ()
