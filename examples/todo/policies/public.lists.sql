alter table public.lists enable row level security;

grant select, insert, update, delete on public.lists to authenticated;

-- The owner test comes first and stands on its own: `is_list_member` reads the table, so it cannot see a row
-- being inserted, and `insert ... returning` (supabase-js `.insert().select()`) must still show it to its owner.
create policy lists_select on public.lists for select to authenticated
  using (owner_id = (select auth.uid()) or public.is_list_member(id));

create policy lists_insert on public.lists for insert to authenticated
  with check (owner_id = auth.uid());

create policy lists_update on public.lists for update to authenticated
  using (owner_id = auth.uid())
  with check (owner_id = auth.uid());

create policy lists_delete on public.lists for delete to authenticated
  using (owner_id = auth.uid());
