alter table public.todos enable row level security;

grant select, insert, update, delete on public.todos to authenticated;

create policy todos_select on public.todos for select to authenticated
  using (public.is_list_member(list_id));

create policy todos_insert on public.todos for insert to authenticated
  with check (public.is_list_member(list_id));

create policy todos_update on public.todos for update to authenticated
  using (public.is_list_member(list_id))
  with check (public.is_list_member(list_id));

create policy todos_delete on public.todos for delete to authenticated
  using (public.is_list_member(list_id));
