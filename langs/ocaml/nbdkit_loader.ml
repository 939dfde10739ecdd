(* nbdkit_loader.ml: the host's own OCaml part besides NBDKit.

   Linked into the plugin object with the whole standard library, Unix,
   Str and the threads library, so that a script may use any of them.  It
   gives host.c what it needs from OCaml: loading a compiled script
   with Dynlink, and an MD5 digest for the compile cache's key. *)

let () =
  Callback.register "NBDKit.loadfile" (fun path ->
      try Dynlink.loadfile path; None with
      | Dynlink.Error (Dynlink.Library's_module_initializers_failed exn) ->
          let bt = Printexc.get_backtrace () in
          let bt = if bt = "" then "" else "\n" ^ bt in
          Some ("the script raised " ^ Printexc.to_string exn ^ bt)
      | Dynlink.Error e -> Some (Dynlink.error_message e)
      | exn -> Some (Printexc.to_string exn));
  Callback.register "NBDKit.digest" (fun s -> Digest.to_hex (Digest.string s));
  (* A compilation unit name the script cannot have: one of ours, or
     another script's. *)
  Callback.register "NBDKit.unit_taken" (fun name ->
      List.mem name (Dynlink.all_units ()));
  Callback.register "NBDKit.ocaml_version" (fun () -> Sys.ocaml_version)
