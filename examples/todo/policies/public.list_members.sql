alter table public.list_members enable row level security;

grant select, insert, delete on public.list_members to authenticated;

-- Members see who else is on their lists.
create policy list_members_select on public.list_members for select to authenticated
  using (public.is_list_member(list_id));

-- Only the list's owner adds or removes members.
create policy list_members_insert on public.list_members for insert to authenticated
  with check (exists (select 1 from public.lists l where l.id = list_id and l.owner_id = auth.uid()));

create policy list_members_delete on public.list_members for delete to authenticated
  using (exists (select 1 from public.lists l where l.id = list_id and l.owner_id = auth.uid()));
