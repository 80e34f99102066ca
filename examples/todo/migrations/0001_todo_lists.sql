-- A small shared-todo-lists app: a list has an owner and members; members see and edit its todos.
create table public.lists (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null default auth.uid(),
  title text not null check (length(title) between 1 and 200),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.list_members (
  list_id uuid not null references public.lists (id) on delete cascade,
  user_id uuid not null,
  role text not null default 'editor' check (role in ('editor', 'viewer')),
  added_at timestamptz not null default now(),
  primary key (list_id, user_id)
);
create index list_members_user_id on public.list_members (user_id);

create table public.todos (
  id uuid primary key default gen_random_uuid(),
  list_id uuid not null references public.lists (id) on delete cascade,
  title text not null check (length(title) between 1 and 500),
  done boolean not null default false,
  position integer not null default 0,
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index todos_list_id on public.todos (list_id);

-- Policies call this instead of reading list_members directly: SECURITY DEFINER with a fixed search_path
-- avoids the recursion a members policy that reads list_members itself would cause.
create function public.is_list_member(target_list uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (
    select 1 from public.lists l where l.id = target_list and l.owner_id = auth.uid()
  ) or exists (
    select 1 from public.list_members m where m.list_id = target_list and m.user_id = auth.uid()
  )
$$;
grant execute on function public.is_list_member(uuid) to authenticated;

create function public.touch_updated_at() returns trigger
language plpgsql
as $$
begin
  new.updated_at := now();
  return new;
end
$$;
create trigger lists_touch before update on public.lists
  for each row execute function public.touch_updated_at();
create trigger todos_touch before update on public.todos
  for each row execute function public.touch_updated_at();
