<?php

declare(strict_types=1);

namespace Magento\Framework\Data;

/** A paged list of items with the few collection methods the backfill calls; records the filters. */
class Collection implements \IteratorAggregate
{
    public array $filters = [];
    private int $pageSize = 20;
    private int $page = 1;

    public function __construct(public array $items = [])
    {
    }

    public function addFieldToFilter($field, $condition = null)
    {
        $this->filters[$field] = $condition;
        return $this;
    }

    public function addAttributeToSelect($attribute, $joinType = false)
    {
        return $this;
    }

    public function setOrder($field, $direction = 'DESC')
    {
        return $this;
    }

    public function setPageSize($size)
    {
        $this->pageSize = (int) $size;
        return $this;
    }

    public function setCurPage($page)
    {
        $this->page = (int) $page;
        return $this;
    }

    public function getLastPageNumber()
    {
        return max(1, (int) ceil(count($this->matching()) / $this->pageSize));
    }

    public function getSize()
    {
        return count($this->matching());
    }

    /** The items passing the `neq` filters (the only condition the stand-in evaluates). */
    private function matching(): array
    {
        return array_values(array_filter($this->items, function ($item): bool {
            foreach ($this->filters as $field => $condition) {
                if (
                    is_array($condition) && array_key_exists('neq', $condition)
                    && (string) $item->getData($field) === (string) $condition['neq']
                ) {
                    return false;
                }
            }
            return true;
        }));
    }

    public function clear()
    {
        return $this;
    }

    public function getIterator(): \Iterator
    {
        $items = $this->matching();
        return new \ArrayIterator(array_slice($items, ($this->page - 1) * $this->pageSize, $this->pageSize));
    }
}
